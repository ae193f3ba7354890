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


# Where the middleware leaves the caller it admitted, for the routes that need it.
CALLER_KEY = "mn_api.caller"


class Gatekeeper:
    """Admits a request from its headers alone, before any body is read: the rate limit
    (by caller, or by address for an unknown token), then the token, then write rights."""

    def __init__(self, authenticator: Authenticator, limiter: RateLimiter | None) -> None:
        self.authenticator = authenticator
        self.limiter = limiter

    async def admit(self, method: str, authorization: str | None, client: str) -> Caller:
        """The caller, or raises the problem to answer (401, 403, 429)."""
        token = _bearer_token(authorization)
        caller = self.authenticator.identify(token, client)
        if self.limiter is not None:
            # Callers with a bad token are limited by address, which also slows guessing.
            wait = await self.limiter.hit(caller.id if caller else f"addr:{client}")
            if wait is not None:
                raise RateLimitedError(wait)
        if caller is None:
            raise HttpProblem(
                401,
                "unauthorized",
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not caller.can_write and method not in READ_METHODS:
            raise HttpProblem(403, "forbidden", "this token may only read")
        return caller


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller the middleware admitted (the dependency documents the bearer scheme)."""
    caller = request.scope.get(CALLER_KEY)
    if isinstance(caller, Caller):
        return caller
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    authorization = f"Bearer {credentials.credentials}" if credentials is not None else None
    client = request.client.host if request.client else "unknown"
    return await gatekeeper.admit(request.method, authorization, client)


AuthDep = Annotated[Caller, Depends(authenticate)]
