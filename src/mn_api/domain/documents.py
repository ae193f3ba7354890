"""JSON text produced by the runtime, kept as bytes and parsed only when someone looks inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Parser = Callable[[bytes], Any]


class JsonDocument:
    """A JSON value as the runtime serialized it.

    Routes that only relay the value send `raw` untouched; use cases that need to look
    inside read `value`, parsed once with the parser the adapter supplied.
    """

    __slots__ = ("_parse", "_value", "raw")

    _UNSET: Any = object()

    def __init__(self, raw: bytes, parse: Parser, value: Any = _UNSET) -> None:
        self.raw = raw
        self._parse = parse
        self._value = value

    @property
    def parser(self) -> Parser:
        """How this document is parsed: for documents made from the same source."""
        return self._parse

    @property
    def value(self) -> Any:
        if self._value is JsonDocument._UNSET:
            self._value = self._parse(self.raw)
        return self._value

    def __repr__(self) -> str:
        return f"JsonDocument({self.raw[:60]!r}{'...' if len(self.raw) > 60 else ''})"
