"""CoreNodes: the core's nodes as the gateway reaches them, one channel each, and which of
them calls go to.

Every node of a core cluster serves the whole cluster. Calls go to one node, the first that
answers, until it stops answering; then to the next. Each node has a channel of its own, so
that each sends its own address as the HTTP/2 `:authority` (a core's HTTP/2 server resets
calls whose authority is a list of addresses, which is what one channel over a list sends),
and so that a node that stops answering is left at once rather than after gRPC's
reconnection backoff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from mn_api.adapters.grpc.protos import (
    cluster_pb2_grpc,
    job_pb2_grpc,
    observability_pb2_grpc,
)
from mn_api.domain.errors import RuntimeFailureError, RuntimeProtocolError

log = logging.getLogger("mn_api.grpc")

JOB_SERVICE = "mirrorneuron.job.v1.JobService"
CLUSTER_SERVICE = "mirrorneuron.cluster.v1.ClusterService"
OBSERVABILITY_SERVICE = "mirrorneuron.observability.v1.ObservabilityService"
RECEIVE_LIMIT = 64 * 1024 * 1024
METADATA_LIMIT = 1024 * 1024

# Reads are retried on UNAVAILABLE with backoff; SubmitJob and other writes never are.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": JOB_SERVICE, "method": "GetJob"},
                    {"service": JOB_SERVICE, "method": "ListJobs"},
                    {"service": CLUSTER_SERVICE},
                    {"service": OBSERVABILITY_SERVICE},
                ],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

# Calls that change nothing: made again on another node when theirs does not answer.
READS = frozenset({"GetJob", "ListJobs", "GetSystemSummary", "StreamEvents"})


class CoreNode:
    """One core node: its channel and the stubs of the services it serves."""

    __slots__ = ("channel", "cluster", "jobs", "observability", "target")

    def __init__(self, target: str, channel: grpc.aio.Channel) -> None:
        self.target = target
        self.channel = channel
        self.jobs = job_pb2_grpc.JobServiceStub(channel)
        self.cluster = cluster_pb2_grpc.ClusterServiceStub(channel)
        self.observability = observability_pb2_grpc.ObservabilityServiceStub(channel)


class CoreNodes:
    """The channels to every node, opened inside the running event loop."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        authority: str | None,
        credentials: grpc.ChannelCredentials | None,
        max_send_bytes: int,
    ) -> None:
        if not targets:
            raise ValueError("a core needs at least one address")
        self._targets = list(targets)
        self._authority = authority
        self._credentials = credentials
        self._max_send = max_send_bytes
        self._nodes: list[CoreNode] = []
        # The node calls go to: the first that answers, kept until it stops answering.
        self._current = 0
        self._told_reset: set[str] = set()

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def targets(self) -> list[str]:
        """The nodes, in the order calls fail over."""
        return list(self._targets)

    def connect(self) -> None:
        if self._nodes:
            return
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", self._max_send),
            ("grpc.max_receive_message_length", RECEIVE_LIMIT),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _SERVICE_CONFIG),
            # Reconnect quickly once a core comes back instead of backing off for minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", 30_000),
            # A core lists every manifest problem in the status message, which travels as
            # metadata: room for long lists (the answer lists the first 100 of them).
            ("grpc.max_metadata_size", METADATA_LIMIT),
            ("grpc.absolute_max_metadata_size", METADATA_LIMIT),
        ]
        if self._authority is not None:
            options.append(("grpc.default_authority", self._authority))
        for target in self._targets:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(target, self._credentials, options=options)
            else:
                channel = grpc.aio.insecure_channel(target, options=options)
            self._nodes.append(CoreNode(target, channel))

    async def close(self) -> None:
        nodes, self._nodes = self._nodes, []
        for node in nodes:
            await node.channel.close(grace=None)

    def current(self) -> CoreNode:
        """The node calls go to now."""
        self.connect()
        return self._nodes[self._current % len(self._nodes)]

    def moves_on(self, node: CoreNode, err: grpc.aio.AioRpcError, *, read: bool) -> bool:
        """Whether a call that failed on `node` goes to the next node: only when there is
        one, the node does not answer, and the call is a read or provably never went out.
        Calls after it go to the next node too."""
        if len(self._nodes) < 2:
            return False
        code = err.code()
        if read:
            # A node going down cancels the calls it was serving (our own cancellations
            # are never an AioRpcError): a read is simply made again elsewhere.
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                return False
        elif (
            code is not grpc.StatusCode.UNAVAILABLE
            or "failed to connect" not in (err.details() or "").lower()
        ):
            return False
        if self._nodes[self._current % len(self._nodes)] is node:
            self._current = (self._current + 1) % len(self._nodes)
            log.warning(
                "core node %s does not answer (%s): calls go to %s now",
                node.target,
                (err.details() or "unavailable")[:200],
                self._nodes[self._current].target,
            )
        return True

    def reset_by_core(self, node: CoreNode, err: grpc.aio.AioRpcError, rpc: str) -> Exception:
        """A call the core's HTTP/2 server reset before answering: what a core does with an
        `:authority` it refuses. Named once per node in the log, with the authority."""
        if node.target not in self._told_reset:
            self._told_reset.add(node.target)
            log.error(
                "core node %s reset the call %s before answering (HTTP/2 RST_STREAM): cores "
                "do so when they refuse the :authority sent (%s); set MN_GRPC_AUTHORITY to a "
                "name the core accepts",
                node.target,
                rpc,
                self._authority or f"{node.target}, the node's own address",
            )
        error = RuntimeFailureError(
            "the runtime reset the call before answering (it may refuse the :authority the "
            "gateway sends: see MN_GRPC_AUTHORITY)"
        )
        error.__cause__ = err
        return error


def undecodable(rpc: str) -> RuntimeProtocolError:
    """What gRPC hands back for an answer that is no message of the call's type (or holds
    text that is not UTF-8): nothing, the decoding error being only logged."""
    log.warning("the core answered %s with bytes that are not its message", rpc)
    return RuntimeProtocolError(
        f"the runtime answered {rpc} with something that is not its message"
    )
