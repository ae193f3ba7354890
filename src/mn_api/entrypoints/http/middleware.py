"""GatewayMiddleware: request ids, admission, the body size limit, HEAD, and one access-log
line per request.

Written as plain ASGI so that it costs little on every request and can refuse a request
from its headers (no token, over the rate limit, a body too large) before anything reads
its body, and a body while it streams in.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from random import getrandbits
from typing import Any

from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.application.context import request_id
from mn_api.domain.errors import DomainError
from mn_api.entrypoints.http.auth import CALLER_KEY, Gatekeeper
from mn_api.entrypoints.http.problems import HttpProblem, domain_problem, http_problem, problem_body
from mn_api.entrypoints.http.responses import PROBLEM_JSON, ResponseAborted, dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("mn_api.access")
log = logging.getLogger("mn_api.http")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestTooLargeError(HttpProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "request_too_large",
            f"the request body is larger than {limit} bytes",
            limit_bytes=limit,
        )


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_bytes: int,
        telemetry: PrometheusTelemetry,
        gatekeeper: Gatekeeper | None = None,
        public_paths: frozenset[str] = frozenset(),
        public_prefixes: tuple[str, ...] = (),
        public_requests: Callable[[str, str], bool] | None = None,
        on_response: Callable[[Scope, str, str, int, str], None] | None = None,
    ) -> None:
        self.app = app
        # Told (scope, method, route, status, request id) as each response starts.
        self.on_response = on_response
        self.limit = limit_bytes
        self.telemetry = telemetry
        self.gatekeeper = gatekeeper
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes
        self.public_requests = public_requests

    def _is_public(self, method: str, path: str) -> bool:
        # Preflights carry no credentials; the CORS layer answers them.
        return (
            method == "OPTIONS"
            or path in self.public_paths
            or path.startswith(self.public_prefixes)
            or (self.public_requests is not None and self.public_requests(method, path))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid_bytes = b""
        length: bytes | None = None
        authorization: bytes | None = None
        authorizations = 0
        chunked = False
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _SAFE_ID.match(value):
                rid_bytes = value
            elif name == b"content-length":
                length = value
            elif name == b"authorization":
                authorization = value
                authorizations += 1
            elif name == b"transfer-encoding":
                chunked = True
        # Request ids need to be unique, not secret: no system call for randomness here.
        rid = rid_bytes.decode() if rid_bytes else f"{getrandbits(128):032x}"
        rid_header = (b"x-request-id", rid.encode())
        token = request_id.set(rid)
        status = 500
        started_response = False
        method = scope["method"]
        self.telemetry.in_flight.inc()
        if method == "HEAD":
            # Every GET route answers HEAD: the same status and headers, and no body.
            scope = {**scope, "method": "GET"}
            receive, send = _head_only(receive, send)

        on_response = self.on_response

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), rid_header]
                if on_response is not None:
                    on_response(scope, method, _route(scope), status, rid)
            await send(message)

        try:
            refusal = self._check_length(length) or _check_authorizations(authorizations)
            if refusal is not None:
                await _send_problem(send_with_id, *refusal)
                return
            if self.gatekeeper is not None and not self._is_public(method, scope["path"]):
                client = scope.get("client")
                try:
                    scope[CALLER_KEY] = await self.gatekeeper.admit(
                        method,
                        authorization.decode("latin-1") if authorization else None,
                        client[0] if client else "unknown",
                    )
                except (DomainError, HttpProblem) as refused:
                    answer = (
                        domain_problem(refused)
                        if isinstance(refused, DomainError)
                        else http_problem(refused)
                    )
                    # The body is never read by anyone: the server drops what still comes of it
                    # (the connection's body limits apply), so the client reads the refusal
                    # instead of a reset.
                    await answer(scope, receive, send_with_id)
                    return
            # Without Content-Length or Transfer-Encoding a request has no body to limit.
            limited = self._limited(receive) if length is not None or chunked else receive
            await self.app(scope, limited, send_with_id)
            if not started_response:
                status = CLIENT_GONE  # nothing to answer: the request never arrived whole
        except ResponseAborted:
            pass  # said by whoever cut it; the server drops the unfinished answer
        except Exception as error:
            # One line, without the stack (which may hold paths and values); the caller gets
            # a problem with its request id, on a connection that stays usable.
            log.error("unhandled %s in %s %s", type(error).__name__, method, scope["path"])
            if not started_response:
                await _send_problem(
                    send_with_id,
                    500,
                    problem_body(
                        500, "internal_error", "the gateway could not complete the request"
                    ),
                    keep_alive=True,
                )
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope)
            self.telemetry.in_flight.dec()
            self.telemetry.request(method, route, status, seconds)
            milliseconds = round(seconds * 1000, 1)
            peer = scope.get("client")
            client = peer[0] if peer else "-"
            caller = scope.get(CALLER_KEY)
            # The token's fingerprint (never the token); none when auth is off or refused.
            credential = caller.id if caller is not None and caller.id[:4] == "tok:" else "-"
            access_log.info(
                "%s %s %d %.1fms %s %s",
                method,
                route,
                status,
                milliseconds,
                client,
                credential,
                # The same facts as fields of their own, for JSON logs.
                extra={
                    "http": {
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": milliseconds,
                        "client": client,
                        "credential": credential,
                    }
                },
            )
            request_id.reset(token)

    def _check_length(self, length: bytes | None) -> tuple[int, dict[str, Any]] | None:
        if length is None:
            return None
        if not length.isdigit() or len(length) > 18:
            return 400, problem_body(
                400, "invalid_content_length", "the Content-Length header is not a number"
            )
        if int(length) > self.limit:
            return 413, problem_body(
                413,
                "request_too_large",
                f"the request body is larger than {self.limit} bytes",
                limit_bytes=self.limit,
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit = self.limit
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLargeError(limit)
            return message

        return receive_limited


def _route(scope: Scope) -> str:
    """The template of the route that took the request, for metrics, logs and traces."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


async def _send_problem(
    send: Send, status: int, body: dict[str, Any], *, keep_alive: bool = False
) -> None:
    payload = dumps(body)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    if not keep_alive:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _head_only(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """Pass on the response's start, end it there, and tell the route the client has gone
    (so a stream stops at once)."""
    done = False

    async def send_head(message: Message) -> None:
        nonlocal done
        if done:
            return
        if message["type"] == "http.response.start":
            await send(message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            done = True

    async def receive_head() -> Message:
        if done:
            return {"type": "http.disconnect"}
        return await receive()

    return receive_head, send_head


# What the access log and metrics record for a request the client abandoned before it
# arrived whole (the convention of common proxies): not a server error.
CLIENT_GONE = 499


def _check_authorizations(count: int) -> tuple[int, dict[str, Any]] | None:
    """Two Authorization headers are refused: which one a proxy or the gateway would read
    differs, and neither may be taken for the caller's."""
    if count <= 1:
        return None
    return 400, problem_body(
        400, "duplicate_authorization", "the request carries more than one Authorization header"
    )
