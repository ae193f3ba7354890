"""JoinNode: add another core's node to this core's cluster (`nodes:add`, `nodes:join`).

The other core is asked first (NetworkHandshake, with the join token) and names itself;
this core is then told to connect to it (AddNode). The gateway contacts only hosts it is
allowed to (MN_API_CLUSTER_JOIN_HOSTS: by default the hosts of its own core), one call on
at most two ports, each within a deadline, and passes none of the other core's secrets on
(its tokens and its Redis address stay out of the answer and the logs).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from mn_api.application.ports import RemoteCorePort, RuntimePort
from mn_api.domain.errors import (
    JoinHostNotAllowedError,
    RemoteCoreUnavailableError,
    RuntimeProtocolError,
)

CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"
# The ports a core's gRPC is tried on when none is given, in turn (the next only when the
# one before cannot be reached).
DEFAULT_PORTS = (55051, 50051)
# What of the other core's handshake answer is passed on (never its tokens or its Redis).
PUBLIC_HANDSHAKE = (
    "node_name",
    "runtime_mode",
    "grpc_host",
    "grpc_port",
    "cluster_nodes",
    "network_only",
)
NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@[A-Za-z0-9_.:\[\]-]{1,253}")


def normal_host(host: str) -> str:
    """A host as the allow list compares it: lower case, an IPv6 address without brackets
    and in its compressed form."""
    bare = host.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


class JoinNode:
    def __init__(
        self,
        runtime: RuntimePort,
        remote: RemoteCorePort,
        *,
        allowed_hosts: tuple[str, ...],
        deadline_seconds: float = 10.0,
    ) -> None:
        self._runtime = runtime
        self._remote = remote
        self._allowed = frozenset(normal_host(h) for h in allowed_hosts)
        self._deadline = deadline_seconds

    async def __call__(self, host: str, token: str, grpc_port: int | None = None) -> dict[str, Any]:
        if normal_host(host) not in self._allowed:
            raise JoinHostNotAllowedError(
                f"the gateway may not contact {host!r} to join a node "
                "(MN_API_CLUSTER_JOIN_HOSTS names the hosts it may)"
            )
        local = await self._local_node()
        request = {
            "token": token,
            "node_name": local,
            "node_info_json": json.dumps(
                {
                    "node_name": local,
                    "display_name": local.split("@", 1)[0],
                    "hostname": local.split("@", 1)[-1],
                }
            ),
            "version": 1,
        }
        answer = await self._handshake(normal_host(host), grpc_port, request)
        node_name = answer.get("node_name") or f"mirror_neuron@{normal_host(host)}"
        if not isinstance(node_name, str) or not NODE_NAME.fullmatch(node_name):
            raise RuntimeProtocolError("the node to join answered with no usable node name")
        added = await self._runtime.call_service(
            CLUSTER + "AddNode", {"node_name": node_name, "token": token, "version": 1}, kind="node"
        )
        return {
            "version": 1,
            "ok": True,
            "host": host,
            "node_name": node_name,
            "status": added.get("status") or "connected",
            "message": f"{node_name} was added to the cluster.",
            "handshake": {key: answer[key] for key in PUBLIC_HANDSHAKE if key in answer},
        }

    async def _handshake(
        self, host: str, port: int | None, request: Mapping[str, Any]
    ) -> dict[str, Any]:
        ports = (port,) if port else DEFAULT_PORTS
        for index, tried in enumerate(ports):
            try:
                return await self._remote.handshake(
                    host, tried, request, deadline_seconds=self._deadline
                )
            except RemoteCoreUnavailableError:
                if index == len(ports) - 1:
                    raise
        raise AssertionError("unreachable: the last port answers or raises")

    async def _local_node(self) -> str:
        """This core's own node: the summary's node marked as itself, else its first."""
        summary = (await self._runtime.system_summary()).value
        nodes = summary.get("nodes") if isinstance(summary, Mapping) else None
        named = [
            n for n in nodes or () if isinstance(n, Mapping) and isinstance(n.get("name"), str)
        ]
        for node in named:
            if node.get("self?") is True or node.get("self") is True:
                return str(node["name"])
        if not named:
            raise RuntimeProtocolError("the core's summary names no node of its own")
        return str(named[0]["name"])
