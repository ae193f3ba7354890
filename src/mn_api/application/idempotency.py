"""Idempotent execution: the same key and request give the first answer, never a second run.

Once a request may have reached the runtime, its key is never given up:
- the runtime answered: the answer is kept, and replayed to every retry; when the store
  cannot take it now, the caller still gets it and it is written once the store is back;
- the answer was lost (a timeout, a dropped connection, the caller leaving): the key
  becomes "outcome unknown", and a retry gets 409 `idempotency_outcome_unknown` instead of
  a second run;
- the runtime refused, or the request never left: the key is released for a retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mn_api.application.ports import IdempotencyStore, StoredAnswer
from mn_api.domain.errors import (
    DomainError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    IdempotencyOutcomeUnknownError,
    InvalidIdempotencyKeyError,
)

log = logging.getLogger("mn_api.idempotency")

MAX_KEY_LENGTH = 255
# How often records the store could not take are offered to it again.
RETRY_WRITES_SECONDS = 0.5


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidIdempotencyKeyError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )


def outcome_unknown() -> IdempotencyOutcomeUnknownError:
    return IdempotencyOutcomeUnknownError(
        "the first request with this Idempotency-Key may have reached the runtime, but its "
        "answer was lost; look for the job before sending the request again with a new key"
    )


@dataclass(frozen=True, slots=True)
class _Unwritten:
    fingerprint: str
    answer: StoredAnswer | None  # None: the outcome is unknown


class Idempotency:
    """Runs work once per (caller, route, key); answers replayed by later requests."""

    def __init__(
        self, store: IdempotencyStore, ttl_seconds: float, lease_seconds: float = 120.0
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        # Records the store could not take yet, by scoped key; written when it is back.
        self._unwritten: dict[str, _Unwritten] = {}
        self._writer: asyncio.Task[None] | None = None

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
        pending = self._unwritten.get(scoped)
        if pending is not None:
            return self._known(pending.fingerprint, pending.answer, fingerprint), True
        claim = await self._store.claim(scoped, fingerprint, self._lease, self._ttl)
        if not claim.won:
            if claim.fingerprint != fingerprint:
                raise _reused()
            if claim.unknown:
                raise outcome_unknown()
            if claim.answer is None:
                raise IdempotencyInFlightError(
                    "a request with this Idempotency-Key is still being answered"
                )
            return claim.answer, True
        try:
            answer = await work()
        except BaseException as error:
            may_have_run = not isinstance(error, DomainError) or error.may_have_run
            await asyncio.shield(self._give_up(scoped, fingerprint, may_have_run=may_have_run))
            raise
        await asyncio.shield(self._keep(scoped, _Unwritten(fingerprint, answer)))
        return answer, False

    @staticmethod
    def _known(first: str, answer: StoredAnswer | None, fingerprint: str) -> StoredAnswer:
        if first != fingerprint:
            raise _reused()
        if answer is None:
            raise outcome_unknown()
        return answer

    async def _give_up(self, scoped: str, fingerprint: str, *, may_have_run: bool) -> None:
        if may_have_run:
            await self._keep(scoped, _Unwritten(fingerprint, None))
            return
        try:
            await self._store.release(scoped)
        except DomainError:
            # The claim stays; once its lease runs out it reads as "outcome unknown", which
            # is cautious rather than wrong.
            log.warning("an idempotency claim could not be released")

    async def _keep(self, scoped: str, record: _Unwritten) -> None:
        try:
            await self._write(scoped, record)
        except DomainError:
            log.warning("the idempotency store is unavailable: an answer waits to be recorded")
            self._unwritten[scoped] = record
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_later())

    async def _write(self, scoped: str, record: _Unwritten) -> None:
        if record.answer is None:
            await self._store.mark_unknown(scoped, record.fingerprint, self._ttl)
        else:
            await self._store.complete(scoped, record.fingerprint, record.answer, self._ttl)

    async def _write_later(self) -> None:
        while self._unwritten:
            await asyncio.sleep(RETRY_WRITES_SECONDS)
            for scoped, record in list(self._unwritten.items()):
                try:
                    await self._write(scoped, record)
                except DomainError:
                    break  # still away: try again later
                if self._unwritten.get(scoped) is record:
                    del self._unwritten[scoped]
        log.info("the idempotency store has every answer again")

    @property
    def waiting(self) -> int:
        """How many records wait for the store to come back."""
        return len(self._unwritten)

    async def close(self) -> None:
        """Try once more to write what waits; what the store still refuses is lost."""
        if self._writer is not None:
            self._writer.cancel()
        for scoped, record in list(self._unwritten.items()):
            try:
                await self._write(scoped, record)
            except DomainError:
                log.warning("an idempotency record could not be written before stopping")


def _reused() -> IdempotencyKeyReusedError:
    return IdempotencyKeyReusedError(
        "this Idempotency-Key was already used for a different request"
    )
