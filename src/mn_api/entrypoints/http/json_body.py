"""Reading JSON request bodies strictly, cheaply, and off the loop when they are large.

What Python's own parser lets through and nothing downstream can carry is refused here as
invalid JSON (422): NaN and Infinity, lone surrogates (not UTF-8), and integers outside
the 64-bit range a JSON encoder can write again. A whole number written with a fraction or
an exponent (`1e30`) is an integer too, as JSON Schema (and so the API's document) counts.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

# Bodies larger than this are parsed on a thread, so the loop keeps serving meanwhile.
LARGE_BODY_BYTES = 256 * 1024
INT_RANGE = range(-(2**63), 2**64)
# A run of 19 digits or more may be an integer beyond the range (or only a long string):
# -9223372036854775809 has 19. A number with an exponent may be a whole number beyond it.
_LONG_DIGITS = re.compile(rb"\d{19}")
_EXPONENT = re.compile(rb"[\[:,]\s*-?\d+(?:\.\d+)?[eE]")


def _bounded_int(text: str) -> int:
    value = int(text)
    if value not in INT_RANGE:
        raise ValueError
    return value


def _bounded_float(text: str) -> float:
    value = float(text)
    if value.is_integer() and not INT_RANGE.start <= value < INT_RANGE.stop:
        raise ValueError
    return value


def strict_loads(body: bytes) -> Any:
    """The JSON value of `body`, or json.JSONDecodeError (which FastAPI answers as 422)."""
    value = orjson.loads(body)  # refuses NaN, Infinity and lone surrogates by itself
    if _LONG_DIGITS.search(body) or _EXPONENT.search(body):
        # orjson reads a too-large integer as a float; only the slow parser can tell.
        try:
            json.loads(body, parse_int=_bounded_int, parse_float=_bounded_float)
        except ValueError as err:
            if isinstance(err, json.JSONDecodeError):
                raise
            raise json.JSONDecodeError(
                "an integer is outside the 64-bit range", body.decode("utf-8", "replace"), 0
            ) from None
    return value


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > LARGE_BODY_BYTES:
                self._json = await asyncio.to_thread(strict_loads, body)
            else:
                self._json = strict_loads(body)
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is read by `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return handle
