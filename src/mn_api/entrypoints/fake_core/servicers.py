"""The core's gRPC services over the in-memory runtime, and the servers (one per simulated
node) that serve them."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc

from mn_api.adapters.grpc.later import fields_of
from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    job_v2_pb2,
    job_v2_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
)
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.domain import errors as e
from mn_api.entrypoints.fake_core.control import CallLog
from mn_api.entrypoints.fake_core.faults import FaultRefusedError, fault_handler
from mn_api.entrypoints.fake_core.later import serves_later
from mn_api.entrypoints.fake_core.refusals import (
    HANDLER_CRASH,
    _Answers,
    _parses_to_no_object,
    protected_rpcs,
)

# How long calls in flight on a killed node's server may take to finish (the fault call
# that killed it among them) before they are cut.
KILL_GRACE_SECONDS = 0.2


@serves_later(job_pb2.DESCRIPTOR.services_by_name["JobService"], job_pb2)
class JobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self, runtime: InMemoryRuntime, *, admin_token: str | None, replay: bool) -> None:
        self._runtime = runtime
        self._admin_token = admin_token
        self._replay = replay
        self._answers = _Answers(runtime.release)

    async def SubmitJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._runtime.release.generation_a_documents and _parses_to_no_object(
            request.manifest_json
        ):
            await context.abort(grpc.StatusCode.UNKNOWN, HANDLER_CRASH)
        work = self._runtime.submit_job(request.manifest_json, dict(request.payloads))
        ack = await self._answers.run(context, "SubmitJob", work)
        return job_pb2.SubmitJobResponse(
            job_id=ack.job_id, status=ack.status, **self._answers.version()
        )

    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            raw = (await self._runtime.get_job(request.job_id)).raw.decode()
        except e.JobNotFoundError:
            raw = self._runtime.release.unknown_job_json
        return job_pb2.GetJobResponse(job_json=raw, **self._answers.version())

    async def ListJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        work = self._runtime.list_jobs(request.limit, request.include_terminal)
        document = await self._answers.run(context, "ListJobs", work)
        return job_pb2.ListJobsResponse(jobs_json=document.raw.decode(), **self._answers.version())

    async def CancelJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await self._answers.run(
            context, "CancelJob", self._runtime.cancel_job(request.job_id)
        )
        return job_pb2.CancelJobResponse(
            job_id=ack.job_id, status=ack.status, **self._answers.version()
        )

    async def PauseJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await self._answers.run(context, "PauseJob", self._runtime.pause_job(request.job_id))
        return job_pb2.PauseJobResponse(
            job_id=ack.job_id, status=ack.status, **self._answers.version()
        )

    async def ResumeJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await self._answers.run(
            context, "ResumeJob", self._runtime.resume_job(request.job_id)
        )
        return job_pb2.ResumeJobResponse(
            job_id=ack.job_id, status=ack.status, **self._answers.version()
        )

    async def ClearJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._answers.missing(context, self._runtime.release.clear_jobs)
        if self._runtime.release.clear_with_admin_token and not (
            self._admin_token and hmac.compare_digest(request.admin_token, self._admin_token)
        ):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "invalid admin token")
        count = await self._runtime.clear_jobs()
        return job_pb2.ClearJobsResponse(cleared_count=count, **self._answers.version())

    async def CancelAllJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._answers.missing(context, self._runtime.release.cancel_all)
        result = await self._runtime.cancel_all_jobs()
        return job_pb2.CancelAllJobsResponse(
            result_json=result.raw.decode(), **self._answers.version()
        )

    async def ReplayDeadLetter(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._answers.missing(context, self._replay and self._runtime.release.replay)
        work = self._runtime.replay_dead_letter(request.job_id, request.event_index)
        ack = await self._answers.run(context, "ReplayDeadLetter", work)
        return job_pb2.ReplayDeadLetterResponse(
            job_id=ack.job_id, status=ack.status, agent_id=ack.agent_id
        )


@serves_later(cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"], cluster_pb2)
class ClusterService(cluster_pb2_grpc.ClusterServiceServicer):
    """The cluster service of one node: its summary says `self?` of `node` (of the first
    live node when None)."""

    def __init__(
        self,
        runtime: InMemoryRuntime,
        node: str | None = None,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self._runtime = runtime
        self._node = node
        self._host = host
        self._ports = ports if ports is not None else {}
        self._answers = _Answers(runtime.release)

    async def NetworkHandshake(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Answered as this node, on the address it serves (1.2.5 and newer)."""
        nodes = self._runtime.services.group("nodes")
        await self._answers.missing(context, nodes is not None)
        port = self._ports.get(self._node or "", 0)
        try:
            answer = nodes.handshake(
                fields_of(request), node=self._node, host=self._host, port=port
            )
        except CoreRefusal as refused:
            await context.abort(getattr(grpc.StatusCode, refused.code), refused.message)
        return cluster_pb2.NetworkHandshakeResponse(**answer)

    async def GetSystemSummary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._node is None:
            document = await self._runtime.system_summary()
        else:
            try:
                document = self._runtime.system_summary_as(self._node)
            except ValueError:  # a call that came in as the node was killed
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the node is shutting down")
        return cluster_pb2.GetSystemSummaryResponse(
            summary_json=document.raw.decode(), **self._answers.version()
        )

    async def RemoveNode(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._answers.missing(context, self._runtime.release.clear_jobs)
        try:
            status = await self._runtime.remove_node(request.node_name)
        except e.NodeNotFoundError:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"node {request.node_name} is not a cluster member"
            )
        return cluster_pb2.RemoveNodeResponse(
            node_name=request.node_name, status=status, **self._answers.version()
        )


class _Later:
    """A service whose every method the simulation's later services answer."""

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._answers = _Answers(runtime.release)


@serves_later(job_v2_pb2.DESCRIPTOR.services_by_name["JobService"], job_v2_pb2)
class JobsV2Service(_Later, job_v2_pb2_grpc.JobServiceServicer):
    """Job definitions and their runs (1.2.31)."""


@serves_later(operations_pb2.DESCRIPTOR.services_by_name["OperationsService"], operations_pb2)
class OperationsService(_Later, operations_pb2_grpc.OperationsServiceServicer):
    """Operations over many jobs or a node (1.2.31)."""


class ObservabilityService(observability_pb2_grpc.ObservabilityServiceServicer):
    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._answers = _Answers(runtime.release)

    async def StreamEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        stream = self._runtime.core_stream(
            request.job_id,
            follow=request.follow,
            heartbeat_ms=request.heartbeat_interval_ms,
            limit=request.limit,
        )
        version = self._answers.version()
        async with contextlib.aclosing(stream):
            async for raw in stream:
                yield observability_pb2.EventResponse(event_json=raw.decode(), **version)


class FakeCore:
    """grpc.aio servers around an InMemoryRuntime, one per simulated node, each serving the
    whole cluster and answering the summary as its own node; start it inside a running loop.

    Every port also serves the fault service (`faults.py`): killing a node stops its
    server, so that its port refuses connections as a killed node's would, and restarting
    it serves it again on the same port.
    """

    def __init__(
        self,
        runtime: InMemoryRuntime,
        *,
        replay: bool = True,
        token: str | None = None,
        admin_token: str | None = None,
        join_token: str | None = None,
    ) -> None:
        self.runtime = runtime
        nodes = runtime.services.group("nodes")
        if nodes is not None:  # NetworkHandshake's secret, and the token it hands out
            nodes.join_token = join_token
            nodes.auth_token = token or ""
        self.release = runtime.release
        self.replay = replay
        self.call_log = CallLog(token, protected_rpcs(runtime.release, runtime.services.methods))
        self._admin_token = admin_token
        self._servers: dict[str, grpc.aio.Server] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._host = "127.0.0.1"
        self._credentials: grpc.ServerCredentials | None = None
        # Each node's port, kept while it is down so that it comes back on the same one.
        self.ports: dict[str, int] = {}
        self.port = 0

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: grpc.ServerCredentials | None = None,
        *,
        ports: Sequence[int] = (),
    ) -> int:
        """Serve every node: the first on `port`, or each on its own of `ports` (0 or
        missing: a free one). Answers the first node's port."""
        await self.runtime.start()
        self._host, self._credentials = host, credentials
        names = self.runtime.live_nodes
        wanted = list(ports) or [port]
        wanted += [0] * (len(names) - len(wanted))
        for name, chosen in zip(names, wanted, strict=False):
            self.ports[name] = await self._serve(name, chosen)
        self.port = self.ports[names[0]]
        return self.port

    async def _serve(self, name: str, port: int) -> int:
        server = grpc.aio.server(
            interceptors=[self.call_log],
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        jobs = JobService(self.runtime, admin_token=self._admin_token, replay=self.replay)
        job_pb2_grpc.add_JobServiceServicer_to_server(jobs, server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
            ClusterService(self.runtime, name, host=self._host, ports=self.ports), server
        )
        observability_pb2_grpc.add_ObservabilityServiceServicer_to_server(
            ObservabilityService(self.runtime), server
        )
        offered = self.runtime.release.later_services
        if "jobs_v2" in offered:
            job_v2_pb2_grpc.add_JobServiceServicer_to_server(JobsV2Service(self.runtime), server)
        if "operations" in offered:
            operations_pb2_grpc.add_OperationsServiceServicer_to_server(
                OperationsService(self.runtime), server
            )
        server.add_generic_rpc_handlers((fault_handler(self._apply),))
        address = f"{self._host}:{port}"
        if self._credentials is not None:
            bound = server.add_secure_port(address, self._credentials)
        else:
            bound = server.add_insecure_port(address)
        await server.start()
        self._servers[name] = server
        return bound

    # -- faults ----------------------------------------------------------------------------

    async def kill_node(self, name: str) -> None:
        """Kill the node in the runtime and stop its server: its port refuses connections.
        Calls in flight on it (the one asking, perhaps) get a moment to finish."""
        try:
            self.runtime.kill_node(name)
        except ValueError as refused:
            raise FaultRefusedError(str(refused)) from None
        server = self._servers.pop(name, None)
        if server is not None:
            self._stopping[name] = asyncio.create_task(server.stop(KILL_GRACE_SECONDS))

    async def restart_node(self, name: str) -> None:
        """Bring the node back in the runtime and serve it again on its port."""
        if name not in self.runtime.lost_nodes:
            raise FaultRefusedError(f"{name} is not a lost node of the cluster")
        stopping = self._stopping.pop(name, None)
        if stopping is not None:
            await stopping
        port = self.ports.get(name, 0)
        try:
            self.ports[name] = await self._serve(name, port)
        except RuntimeError:
            raise FaultRefusedError(f"{name} cannot listen on its port {port} again") from None
        self.runtime.restart_node(name)

    def state(self) -> dict[str, Any]:
        """The cluster as the fault service reports it."""
        runtime = self.runtime
        return {
            "nodes": runtime.live_nodes,
            "lost": runtime.lost_nodes,
            "leader": runtime.leader,
            "state_store": "up" if runtime.state_store_available else "down",
            "ports": dict(self.ports),
        }

    async def reset(self) -> None:
        """As freshly started: every node back, the state store up, no job, no call
        remembered and no fault scripted."""
        for name in list(self.runtime.lost_nodes):
            await self.restart_node(name)
        self.runtime.state_store_up()
        self.runtime.reset()
        self.call_log.reset()

    async def _apply(self, action: str, fault: Mapping[str, Any]) -> Mapping[str, Any]:
        log = self.call_log
        if action == "calls":
            return {"calls": log.received(fault.get("rpc"))}
        if action == "fail_next":
            log.fail_next(fault.get("rpc"), *_given(fault, "count", "code", "message"))
            return {"scripted": log.scripted()}
        if action == "delay_next":
            log.delay_next(fault.get("rpc"), *_given(fault, "count", "seconds"))
            return {"scripted": log.scripted()}
        if action == "reset":
            await self.reset()
        elif action == "kill_node":
            await self.kill_node(fault["node"])
        elif action == "restart_node":
            await self.restart_node(fault["node"])
        elif action == "state_store_down":
            self.runtime.state_store_down()
        elif action == "state_store_up":
            self.runtime.state_store_up()
        return self.state()

    async def stop(self, grace: float | None = 1.0) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            await server.stop(grace)
        for stopping in self._stopping.values():
            await stopping
        self._stopping.clear()
        await self.runtime.close()


_DEFAULTS: dict[str, Any] = {"count": 1, "code": "UNAVAILABLE", "message": "", "seconds": 1.0}


def _given(fault: Mapping[str, Any], *names: str) -> list[Any]:
    """The script's fields in order, each defaulted when the request leaves it out."""
    return [fault.get(name, _DEFAULTS[name]) for name in names]
