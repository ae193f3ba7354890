"""JSON responses written with orjson; documents from the runtime go out as they came."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

from mn_api.domain.documents import JsonDocument

JSON = "application/json"


class ResponseAborted(Exception):
    """A streamed answer that cannot be finished: its status is sent, so the connection is
    dropped without the body's end, and the client knows the answer is incomplete."""


PROBLEM_JSON = "application/problem+json"


def _default(value: Any) -> Any:
    if isinstance(value, JsonDocument):
        return orjson.Fragment(value.raw)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(value: Any) -> bytes:
    if isinstance(value, JsonDocument):
        return value.raw
    return orjson.dumps(value, default=_default)


class JsonResponse(JSONResponse):
    """JSON written by orjson; runtime documents pass through without a parse."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return JsonResponse(content, status_code=status_code, headers=headers)


async def json_document_stream(
    head: bytes, items: AsyncIterator[Any], tail: Callable[[], bytes], flush_bytes: int = 1 << 16
) -> AsyncIterator[bytes]:
    """A JSON object written as its array items arrive: `head`, the items, then `tail()`.

    Memory stays at one buffer of `flush_bytes`, however many items there are; `tail` is
    called after the last item, so it may report what only the end of the stream knows.
    """
    buffer = bytearray(head)
    separator = b""
    async for item in items:
        buffer += separator
        buffer += item.raw if type(item) is JsonDocument else dumps(item)
        separator = b","
        if len(buffer) >= flush_bytes:
            yield bytes(buffer)
            buffer.clear()
    buffer += tail()
    yield bytes(buffer)
