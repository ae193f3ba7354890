"""What the core sends, read: its JSON documents (one that is not JSON is never relayed),
the heartbeats that keep a quiet stream open, and the events a following stream repeats."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import orjson

from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import RuntimeProtocolError
from mn_api.domain.events import HEARTBEAT_TYPES

log = logging.getLogger("mn_api.grpc")


def loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        log.warning("the core sent a document that is not JSON (%d bytes)", len(raw))
        raise RuntimeProtocolError("the runtime answered a document that is not JSON") from err


def read_document(text: str) -> JsonDocument:
    """A document of the core's, read at once: one that is not JSON is never relayed."""
    raw = text.encode()
    return JsonDocument(raw, loads, loads(raw))


def is_heartbeat(raw: bytes) -> bool:
    """Cores keep a quiet stream open with `stream_heartbeat` messages (1.2.5+); others
    send `{"type": "heartbeat"}` or nothing at all. None of these is a job event."""
    if len(raw) > 512:
        return False  # heartbeats are short: a long message is an event (the common case)
    stripped = raw.strip()
    if not stripped or stripped == b"{}":
        return True
    if b"heartbeat" not in raw and b'""' not in raw:
        return False
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.get("type", "") in HEARTBEAT_TYPES


def job_document(raw: bytes) -> JsonDocument | None:
    """The GetJob document, or None when it holds no `job` object: `{}` up to 1.2.22 and
    `{"version": 1}` on 1.2.31 are how cores say "no such job"."""
    if len(raw) > 256 and b'"job"' in raw:
        # A large answer that names its job is read when someone looks inside; anything
        # else is read at once, so that what is not JSON is told from "no such job".
        return JsonDocument(raw, loads)
    value = loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("job"), dict):
        return None
    return JsonDocument(raw, loads, value)


class SeenEvents:
    """The events a following stream has passed on lately, by content.

    A core that follows subscribes to live events before it reads the history, so an event
    published in between can arrive twice (CORE.md §5). Events carry millisecond
    timestamps and message ids, so two distinct events never share every byte.
    """

    __slots__ = ("_order", "_set")

    WINDOW = 256

    def __init__(self) -> None:
        self._set: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def repeat(self, raw: bytes) -> bool:
        if raw in self._set:
            return True
        self._set.add(raw)
        self._order.append(raw)
        if len(self._order) > self.WINDOW:
            self._set.discard(self._order.popleft())
        return False


def type_of(raw: bytes) -> str:
    if not raw:
        return ""
    value = loads(raw)
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else ""
