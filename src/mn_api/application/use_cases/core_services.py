"""CoreServices: the core's later services (schedules, deployments, backups, operations,
job definitions and runs, node administration, service discovery), one call each.

The core answers each of these with one JSON document in a `*_json` field; it is read
here (text that is not JSON, where JSON belongs, is a RuntimeProtocolError and nothing of
it is passed on) and handed to the route, which answers it as the core wrote it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import RuntimeProtocolError


class CoreServices:
    def __init__(self, runtime: RuntimePort) -> None:
        self._runtime = runtime

    async def call(
        self,
        method: str,
        request: Mapping[str, Any] | None = None,
        *,
        field: str = "result_json",
        kind: str = "record",
        versioned: bool = True,
    ) -> Any:
        """The document in the answer's `field`, with `version` 1 added to an object that
        has none when `versioned` (as the core's own gateway answers)."""
        answer = await self._runtime.call_service(method, request or {}, kind=kind)
        return read_json(answer.get(field, ""), method, versioned=versioned)

    async def fields(
        self, method: str, request: Mapping[str, Any] | None = None, *, kind: str = "record"
    ) -> dict[str, Any]:
        """The answer message's fields as they are (for answers that are no document)."""
        return await self._runtime.call_service(method, request or {}, kind=kind)

    async def stream(
        self,
        method: str,
        request: Mapping[str, Any],
        *,
        field: str = "event_json",
        kind: str = "record",
    ) -> AsyncIterator[Any]:
        """Each streamed answer's document, in the order the core sends them."""
        stream = self._runtime.stream_service(method, request, kind=kind)
        async with aclosing(stream):  # type: ignore[type-var]
            async for answer in stream:
                yield read_json(answer.get(field, ""), method, versioned=False)


def read_json(text: str, method: str, *, versioned: bool) -> Any:
    name = method.rsplit("/", 1)[-1]
    if not text:
        raise RuntimeProtocolError(f"the runtime answered {name} without its document")
    try:
        value = json.loads(text)
    except ValueError:
        raise RuntimeProtocolError(
            f"the runtime answered {name} with text that is not JSON"
        ) from None
    if versioned and isinstance(value, dict):
        value.setdefault("version", 1)
    return value
