"""GatewayMiddleware: request ids, the body size limit and one access-log line per request.

Written as plain ASGI so that it costs little on every request and can refuse a body
while it streams in, before any route reads it.
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
from mn_api.entrypoints.http.problems import HttpProblem, problem_body
from mn_api.entrypoints.http.responses import PROBLEM_JSON, dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("mn_api.access")
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
    def __init__(self, app: ASGIApp, *, limit_bytes: int, telemetry: PrometheusTelemetry) -> None:
        self.app = app
        self.limit = limit_bytes
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid_bytes = b""
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _SAFE_ID.match(value):
                rid_bytes = value
            elif name == b"content-length":
                length = value
        # Request ids need to be unique, not secret: no system call for randomness here.
        rid = rid_bytes.decode() if rid_bytes else f"{getrandbits(128):032x}"
        rid_header = (b"x-request-id", rid.encode())
        token = request_id.set(rid)
        status = 500
        self.telemetry.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            refusal = self._check_length(length)
            if refusal is not None:
                await _send_problem(send_with_id, *refusal)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.telemetry.in_flight.dec()
            self.telemetry.request(scope["method"], route, status, seconds)
            access_log.info("%s %s %d %.1fms", scope["method"], route, status, seconds * 1000)
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


async def _send_problem(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
