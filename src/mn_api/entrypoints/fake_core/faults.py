"""The fault service of mn-fake-core, and a client for it: tests kill and restart the
simulated cluster's nodes, take its state store away, script the next calls of an RPC to
fail or to wait, list the calls received and reset the whole core, over gRPC, from another
process.

The service has no .proto: `/mirrorneuron.fake.v1.FaultService/Apply` is one unary method
whose request and answer are JSON bytes. A request names an `action`:

- `{"action": "kill_node", "node": "mn2@127.0.0.1"}`: the node dies (its port refuses
  connections from then on);
- `{"action": "restart_node", "node": "mn2@127.0.0.1"}`: it comes back, on the same port;
- `{"action": "state_store_down"}`, `{"action": "state_store_up"}`;
- `{"action": "reset"}`: as freshly started (every node back, the store up, no job, no
  call remembered, no fault scripted);
- `{"action": "status"}`: changes nothing.

Those answer the cluster's state after the action: `{"nodes": [live members], "lost":
[killed nodes], "leader": name, "state_store": "up" | "down", "ports": {name: port}}`.

- `{"action": "fail_next", "rpc": "SubmitJob", "count": 2, "code": "UNAVAILABLE",
  "message": "..."}`: the next `count` calls of that RPC (1 by default) end with that status
  (UNAVAILABLE by default) instead of being served;
- `{"action": "delay_next", "rpc": "GetJob", "count": 1, "seconds": 2.5}`: they are held
  that long first (1 s by default), then served;

both answer `{"scripted": [{rpc, remaining, code, message} | {rpc, remaining, seconds}]}`,
the faults still armed (arming an RPC again replaces its script).

- `{"action": "calls", "rpc": "SubmitJob"}` (`rpc` optional): `{"calls": [{rpc, method,
  authorization, metadata}]}`, the last 1,000 calls received, oldest first; `authorization`
  says whether one was sent, its value is never shown.

A request that is not understood is refused with INVALID_ARGUMENT, an action the cluster's
state forbids (killing a node that is not a live member, the last one, ...) with
FAILED_PRECONDITION.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import orjson

from mn_api.entrypoints.fake_core.control import ScriptError

FAULT_SERVICE = "mirrorneuron.fake.v1.FaultService"


FAULT_METHOD = f"/{FAULT_SERVICE}/Apply"


ACTIONS = frozenset(
    {
        "kill_node",
        "restart_node",
        "state_store_down",
        "state_store_up",
        "status",
        "reset",
        "calls",
        "fail_next",
        "delay_next",
    }
)


class FaultRefusedError(Exception):
    """The cluster's state forbids the fault (e.g. killing a node that is already down)."""


Apply = Callable[[str, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]


def fault_handler(apply: Apply) -> grpc.GenericRpcHandler:
    """The generic handler serving FaultService/Apply through `apply(action, request)`."""

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            fault = orjson.loads(request)
        except orjson.JSONDecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the fault is not JSON")
        action = fault.get("action") if isinstance(fault, dict) else None
        if action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"unknown fault action {action!r} ({known})"
            )
        if action in ("kill_node", "restart_node") and not isinstance(fault.get("node"), str):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{action} names a `node`")
        try:
            state = await apply(action, fault)
        except FaultRefusedError as refused:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(refused))
        except ScriptError as wrong:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(wrong))
        return orjson.dumps(state)

    method = grpc.unary_unary_rpc_method_handler(handle)  # bytes in, bytes out
    return grpc.method_handlers_generic_handler(FAULT_SERVICE, {"Apply": method})


async def apply_fault(
    target: str, action: str, *, deadline_seconds: float = 10.0, **fields: Any
) -> dict[str, Any]:
    """Ask the mn-fake-core at `target` (`host:port` of any live node) to apply a fault;
    answers the cluster's state afterwards. Refusals raise grpc.aio.AioRpcError."""
    # A connection of its own: one shared with other channels to a node that was just
    # killed would still be waiting out its reconnection backoff.
    options = (("grpc.use_local_subchannel_pool", 1),)
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        apply = channel.unary_unary(FAULT_METHOD)
        raw = await apply(orjson.dumps({"action": action, **fields}), timeout=deadline_seconds)
    state: dict[str, Any] = orjson.loads(raw)
    return state
