"""The HTTP/1.1 protocol mn-api serves with: uvicorn's httptools protocol, bounded.

Uvicorn reads headers of any size and count and keeps a connection that sends nothing (or
a byte at a time) open for ever. This protocol adds the limits a server facing the open
network needs, all enforced before the app sees the request:

- the total bytes of a request's line and headers, and their count (431);
- the time to receive them, from the connection's start or the request's first byte (408);
- the time a request body may go quiet while it is being sent (408);
- the number of open connections, kept below the process's descriptor limit: the excess is
  answered 503 at once and closed, so the process can still accept and answer.

Keep-alive idle time is uvicorn's own `timeout_keep_alive`. Each answer is problem+json.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from http import HTTPStatus
from random import getrandbits
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mn_api.config import Settings

log = logging.getLogger("mn_api.http")

# Descriptors kept back for what else the process opens: the core's channel, Redis,
# SQLite, log files, webhook receivers.
RESERVED_DESCRIPTORS = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_seconds: float
    body_idle_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_seconds=settings.header_timeout_seconds,
            body_idle_seconds=settings.body_idle_timeout_seconds,
            max_connections=safe_connection_cap(settings.max_connections),
        )


def safe_connection_cap(asked: int) -> int:
    """`asked` (0: as many as is safe), never more than the descriptor limit allows."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        safe = 1_000_000
    else:
        safe = max(16, soft - max(RESERVED_DESCRIPTORS, soft // 10))
    return safe if asked <= 0 else min(asked, safe)


def raise_descriptor_limit() -> None:
    """Let the process open as many descriptors as its hard limit allows (up to 65536)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("the descriptor limit stays at %d", soft)


class _TooLarge(Exception):
    """Raised inside the parser's callbacks to stop reading an oversized request."""


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits | None] = None
    last_refusal_logged: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedProtocol.limits is None:
            # Read once per process: each worker reads the same environment.
            GuardedProtocol.limits = ConnectionLimits.from_settings(Settings())
        self._limits = GuardedProtocol.limits
        self._in_headers = True
        self._in_body = False
        self._header_bytes = 0
        self._header_count = 0
        self._parsed_bytes = 0  # what the parser has passed on of this request's head
        self._timer: asyncio.TimerHandle | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            now = self.loop.time()
            if now - GuardedProtocol.last_refusal_logged >= 1.0:  # one line a second at most
                GuardedProtocol.last_refusal_logged = now
                log.warning("refusing connections: %d are open", len(self.connections) - 1)
            self._refuse(503, "too_many_connections", "the gateway has too many open connections")
            return
        self._arm(self._limits.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._header_bytes += len(data)
            if self._timer is None:
                self._arm(self._limits.header_seconds)
        elif self._in_body:
            self._arm(self._limits.body_idle_seconds)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No route of the gateway speaks WebSocket (or any other upgraded protocol): the
            # upgrade is refused at once, never left waiting for a protocol that is not there.
            self._refuse(
                404,
                "upgrade_not_supported",
                "this gateway serves HTTP only: no route accepts a protocol upgrade "
                "(live events are Server-Sent Events at /api/v1/jobs/{job_id}/events/stream)",
            )
            return
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _TooLarge) or (self._in_headers and self._too_large()):
                self._refuse_headers()
            elif "content-length" in str(error).lower():
                self._refuse(
                    400, "invalid_content_length", "the Content-Length header is not a number"
                )
            else:
                log.warning("refused a request that is not HTTP/1.1")
                self._refuse(400, "invalid_request", "the request is not valid HTTP/1.1")
            return
        # Still in the headers after all of this: every byte received was a header byte.
        if self._in_headers and self._too_large():
            self._refuse_headers()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_count = 0
        self._parsed_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        if self._parsed_bytes > self._limits.max_header_bytes:
            raise _TooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_bytes += len(name) + len(value) + 4
        # What the parser passed on, not what was received: a read may also hold the body.
        if self._too_large(received=False):
            raise _TooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._in_body = True
        self._arm(self._limits.body_idle_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._in_headers = True
        self._header_bytes = 0
        self._disarm()
        super().on_message_complete()

    # Limits

    def _too_large(self, *, received: bool = True) -> bool:
        """Over a limit: by the fields parsed, and (`received`) by the bytes received."""
        limits = self._limits
        return (
            (received and self._header_bytes > limits.max_header_bytes)
            or self._parsed_bytes > limits.max_header_bytes
            or self._header_count > limits.max_headers
        )

    def _refuse_headers(self) -> None:
        self._refuse(
            431,
            "headers_too_large",
            f"the request's headers exceed {self._limits.max_header_bytes} bytes "
            f"or {self._limits.max_headers} fields",
        )

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._in_body and self.flow is not None and self.flow.read_paused:
            # The app has not read what came yet: the client is not the one waiting.
            self._arm(self._limits.body_idle_seconds)
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
            return
        what = "headers" if self._in_headers else "body"
        self._refuse(408, "request_timeout", f"the request's {what} did not arrive in time")

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer with a problem and close, before (or instead of) any app."""
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if one runs, must not write now
        rid = f"{getrandbits(128):032x}"
        phrase = HTTPStatus(status).phrase
        body = orjson.dumps(
            {
                "type": f"urn:mn-api:problem:{code}",
                "title": phrase,
                "status": status,
                "detail": detail,
                "error": code,
                "errors": [{"code": code, "message": detail}],
                "request_id": rid,
            }
        )
        headers = [
            f"HTTP/1.1 {status} {phrase}",
            "content-type: application/problem+json",
            f"content-length: {len(body)}",
            f"x-request-id: {rid}",
            "connection: close",
        ]
        if status == 503:
            headers.append("retry-after: 1")
        self.transport.write(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
        self.transport.close()
