"""Bearer-token authentication: admin tokens, read-only tokens, constant-time checks."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mn_api.application.ports import RateLimiter
from mn_api.domain.errors import RateLimitedError
from mn_api.entrypoints.http.problems import HttpProblem

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="An MN_API_TOKEN or MN_API_READ_TOKENS value")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a stable, non-secret id of the token, and whether it may write."""

    id: str
    can_write: bool


class Authenticator:
    def __init__(self, admin_tokens: tuple[str, ...], read_tokens: tuple[str, ...]) -> None:
        self._admin = tuple(t.encode() for t in admin_tokens)
        self._read = tuple(t.encode() for t in read_tokens)
        self.enabled = bool(self._admin or self._read)

    @staticmethod
    def _matches(presented: bytes, tokens: tuple[bytes, ...]) -> bool:
        found = False
        for token in tokens:  # no early exit: every token costs the same time
            found |= hmac.compare_digest(presented, token)
        return found

    def identify(self, token: str | None, client: str) -> Caller | None:
        """The caller behind `token`, or None when the token is missing or unknown."""
        if not self.enabled:
            return Caller(id=f"addr:{client}", can_write=True)
        if not token:
            return None
        presented = token.encode()
        caller_id = "tok:" + hashlib.sha256(presented).hexdigest()[:16]
        if self._matches(presented, self._admin):
            return Caller(caller_id, can_write=True)
        if self._matches(presented, self._read):
            return Caller(caller_id, can_write=False)
        return None


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    authenticator: Authenticator = request.app.state.authenticator
    client = request.client.host if request.client else "unknown"
    token = credentials.credentials if credentials is not None else None
    caller = authenticator.identify(token, client)
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        # Callers with a bad token are limited by address, which also slows guessing.
        wait = await limiter.hit(caller.id if caller else f"addr:{client}")
        if wait is not None:
            raise RateLimitedError(wait)
    if caller is None:
        raise HttpProblem(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not caller.can_write and request.method not in READ_METHODS:
        raise HttpProblem(403, "forbidden", "this token may only read")
    return caller


AuthDep = Annotated[Caller, Depends(authenticate)]
