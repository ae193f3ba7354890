"""What mn-fake-core does with every call before its service sees it: credentials checked
as the release checks them, the call remembered, and faults scripted by tests applied (the
next N calls of an RPC failing with a chosen status, or held for a while first).

Tests script faults through the fault service (`faults.py`): `fail_next`, `delay_next`,
`calls` and `reset`. Calls to the fault service itself are neither remembered nor scripted.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

FAKE_PACKAGE = "/mirrorneuron.fake."
# How many calls the log keeps (the oldest go first).
KEPT_CALLS = 1000
# The longest a scripted delay may hold a call, and the most calls one script may cover.
MAX_DELAY_SECONDS = 600.0
MAX_SCRIPTED_CALLS = 100_000


class ScriptError(ValueError):
    """A scripted fault that cannot be armed (an unknown status, a negative count, ...)."""


@dataclass(slots=True)
class _Script:
    """What the next `remaining` calls of one RPC get: an error status, or a delay first."""

    remaining: int
    code: grpc.StatusCode | None = None
    message: str = ""
    delay_seconds: float = 0.0

    def describe(self, rpc: str) -> dict[str, Any]:
        kind = {"code": self.code.name, "message": self.message} if self.code else {}
        delay = {"seconds": self.delay_seconds} if self.code is None else {}
        return {"rpc": rpc, "remaining": self.remaining, **kind, **delay}


def _rpc_name(method: str) -> str:
    """`SubmitJob` from `/mirrorneuron.job.v1.JobService/SubmitJob`."""
    return method.rsplit("/", 1)[-1]


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScriptError("`count` is a whole number of calls")
    if not 1 <= value <= MAX_SCRIPTED_CALLS:
        raise ScriptError(f"`count` is between 1 and {MAX_SCRIPTED_CALLS}")
    return value


def _rpc(value: Any) -> str:
    if not isinstance(value, str) or not value or "/" in value:
        raise ScriptError("`rpc` names one method of the core, e.g. SubmitJob")
    return value


class CallLog(grpc.aio.ServerInterceptor):
    """Checks credentials as the release does, remembers recent calls' metadata, and
    applies the faults scripted for the next calls of an RPC.

    From 1.2.5 the `authorization` metadata (`Bearer ` optional) is compared in constant
    time on protected RPCs only; a core started without a token refuses them all.
    """

    def __init__(self, token: str | None, protected: frozenset[str] = frozenset()) -> None:
        self._token = token
        self._protected = protected
        self.calls: deque[tuple[str, dict[str, str]]] = deque(maxlen=KEPT_CALLS)
        self._scripts: dict[str, _Script] = {}

    # -- what tests script ------------------------------------------------------------------

    def fail_next(
        self, rpc: Any, count: Any = 1, code: Any = "UNAVAILABLE", message: Any = ""
    ) -> None:
        """The next `count` calls of `rpc` end with the status `code` (a gRPC status name)."""
        status = grpc.StatusCode.__members__.get(code) if isinstance(code, str) else None
        if status is None or status is grpc.StatusCode.OK:
            raise ScriptError("`code` is a gRPC status name other than OK, e.g. UNAVAILABLE")
        text = message if isinstance(message, str) and message else f"scripted {status.name}"
        self._scripts[_rpc(rpc)] = _Script(_count(count), code=status, message=text)

    def delay_next(self, rpc: Any, count: Any = 1, seconds: Any = 1.0) -> None:
        """The next `count` calls of `rpc` are held `seconds` before they are served."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ScriptError("`seconds` is a number")
        if not 0 < seconds <= MAX_DELAY_SECONDS:
            raise ScriptError(f"`seconds` is above 0 and at most {MAX_DELAY_SECONDS:g}")
        self._scripts[_rpc(rpc)] = _Script(_count(count), delay_seconds=float(seconds))

    def scripted(self) -> list[dict[str, Any]]:
        """The faults still armed, by RPC."""
        return [script.describe(rpc) for rpc, script in sorted(self._scripts.items())]

    def received(self, rpc: str | None = None) -> list[dict[str, Any]]:
        """The calls remembered, oldest first (of one RPC when named): each call's method
        and metadata, the authorization's value replaced by whether one was sent."""
        listed = []
        for method, metadata in self.calls:
            if rpc is not None and _rpc_name(method) != rpc:
                continue
            shown = {k: v for k, v in metadata.items() if k != "authorization"}
            listed.append(
                {
                    "rpc": _rpc_name(method),
                    "method": method,
                    "authorization": "authorization" in metadata,
                    "metadata": shown,
                }
            )
        return listed

    def reset(self) -> None:
        """Forget the calls and the faults scripted."""
        self.calls.clear()
        self._scripts.clear()

    # -- every call -------------------------------------------------------------------------

    def _allowed(self, presented: str) -> bool:
        if not self._token:
            return False
        if presented[:7].lower() == "bearer ":
            presented = presented[7:]
        return hmac.compare_digest(presented.encode(), self._token.encode())

    def _take_script(self, method: str) -> _Script | None:
        rpc = _rpc_name(method)
        script = self._scripts.get(rpc)
        if script is None:
            return None
        script.remaining -= 1
        if script.remaining <= 0:
            del self._scripts[rpc]
        return script

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(FAKE_PACKAGE):
            return await continuation(details)
        metadata = {
            k.lower(): v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)
        }
        self.calls.append((details.method, metadata))
        script = self._take_script(details.method)
        if details.method in self._protected and not self._allowed(
            metadata.get("authorization", "")
        ):
            handler = grpc.unary_unary_rpc_method_handler(_deny if self._token else _no_token)
        else:
            handler = await continuation(details)
        if script is None or handler is None:
            return handler
        return _scripted(handler, script)


def _scripted(handler: grpc.RpcMethodHandler, script: _Script) -> grpc.RpcMethodHandler:
    """`handler` held for the script's delay first, or ending with its status instead."""

    async def before() -> None:
        if script.delay_seconds:
            await asyncio.sleep(script.delay_seconds)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await before()
        if script.code is not None:
            await context.abort(script.code, script.message)
        return await handler.unary_unary(request, context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await before()
        if script.code is not None:
            await context.abort(script.code, script.message)
        async for item in handler.unary_stream(request, context):
            yield item

    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **codec)
    return grpc.unary_unary_rpc_method_handler(unary, **codec)


async def _deny(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or missing authorization token")


async def _no_token(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED, "this node has no authorization token configured"
    )
