"""The simulated core's control surface, from another process: reset it, list the calls
it received, script the next calls of an RPC to fail or to wait, and take its nodes and its
state store away (a cluster's faults). Each method is one call of the fault service
`/mirrorneuron.fake.v1.FaultService/Apply` (see `mn_api.entrypoints.fake_core.faults`)."""

from __future__ import annotations

from typing import Any

import grpc
import orjson

from mn_api.entrypoints.fake_core.faults import FAULT_METHOD


class CoreControl:
    """Controls the mn-fake-core at `target` (`host:port` of any of its live nodes).
    A refusal raises grpc.RpcError (INVALID_ARGUMENT for a request not understood,
    FAILED_PRECONDITION for a fault the cluster's state forbids)."""

    def __init__(self, target: str, *, deadline_seconds: float = 10.0) -> None:
        self.target = target
        self._deadline = deadline_seconds

    def apply(self, action: str, **fields: Any) -> dict[str, Any]:
        """One action of the fault service, its answer as JSON."""
        # A connection of its own, as for every fault: a shared one to a node just killed
        # would still be waiting out its reconnection backoff.
        options = (("grpc.use_local_subchannel_pool", 1),)
        with grpc.insecure_channel(self.target, options=options) as channel:
            call = channel.unary_unary(FAULT_METHOD)
            raw = call(orjson.dumps({"action": action, **fields}), timeout=self._deadline)
        answer: dict[str, Any] = orjson.loads(raw)
        return answer

    def reset(self) -> dict[str, Any]:
        """As freshly started: every node back, the store up, no job, no call remembered,
        no fault scripted. Answers the cluster's state."""
        return self.apply("reset")

    def calls(self, rpc: str | None = None) -> list[dict[str, Any]]:
        """The calls received (the last 1,000), oldest first; of one RPC when named
        (`"SubmitJob"`). Each is `{rpc, method, authorization, metadata}`, `authorization`
        saying whether one was sent."""
        fields = {"rpc": rpc} if rpc is not None else {}
        calls: list[dict[str, Any]] = self.apply("calls", **fields)["calls"]
        return calls

    def fail_next(
        self, rpc: str, count: int = 1, *, code: str = "UNAVAILABLE", message: str = ""
    ) -> list[dict[str, Any]]:
        """The next `count` calls of `rpc` end with the gRPC status `code`; answers the
        faults still armed."""
        answer = self.apply("fail_next", rpc=rpc, count=count, code=code, message=message)
        scripted: list[dict[str, Any]] = answer["scripted"]
        return scripted

    def delay_next(self, rpc: str, count: int = 1, *, seconds: float = 1.0) -> list[dict[str, Any]]:
        """The next `count` calls of `rpc` are held `seconds` before being served."""
        scripted: list[dict[str, Any]] = self.apply(
            "delay_next", rpc=rpc, count=count, seconds=seconds
        )["scripted"]
        return scripted

    def status(self) -> dict[str, Any]:
        """`{nodes, lost, leader, state_store, ports}`."""
        return self.apply("status")

    def kill_node(self, node: str) -> dict[str, Any]:
        return self.apply("kill_node", node=node)

    def restart_node(self, node: str) -> dict[str, Any]:
        return self.apply("restart_node", node=node)

    def state_store_down(self) -> dict[str, Any]:
        return self.apply("state_store_down")

    def state_store_up(self) -> dict[str, Any]:
        return self.apply("state_store_up")
