"""Idempotent execution: the same key and request give the first answer, never a second run."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from mn_api.application.ports import IdempotencyStore, StoredAnswer
from mn_api.domain.errors import (
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
)

MAX_KEY_LENGTH = 255


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidIdempotencyKeyError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )


class Idempotency:
    """Runs work once per (caller, route, key); answers replayed by later requests.

    Only what `work` returns is stored. When it raises (the runtime could not be
    reached, the request was refused before reaching it), the claim is released so the
    client can send the request again with the same key.
    """

    def __init__(
        self, store: IdempotencyStore, ttl_seconds: float, lease_seconds: float = 120.0
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._lease = lease_seconds

    async def run(
        self,
        *,
        caller: str,
        route: str,
        key: str,
        fingerprint: str,
        work: Callable[[], Awaitable[StoredAnswer]],
    ) -> tuple[StoredAnswer, bool]:
        """The answer, and whether it is a replay of an earlier one."""
        check_key(key)
        scoped = hashlib.sha256(f"{caller}\n{route}\n{key}".encode()).hexdigest()
        claim = await self._store.claim(scoped, fingerprint, self._lease)
        if not claim.won:
            if claim.fingerprint != fingerprint:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was already used for a different request"
                )
            if claim.answer is None:
                raise IdempotencyInFlightError(
                    "a request with this Idempotency-Key is still being answered"
                )
            return claim.answer, True
        try:
            answer = await work()
        except BaseException:
            await self._store.release(scoped)
            raise
        await self._store.complete(scoped, fingerprint, answer, self._ttl)
        return answer, False
