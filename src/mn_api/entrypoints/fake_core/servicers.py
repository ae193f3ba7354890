"""The core's gRPC services over the in-memory runtime, and the server that serves them."""

from __future__ import annotations

import contextlib
import hmac
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.domain import errors as e
from mn_api.entrypoints.fake_core.refusals import (
    HANDLER_CRASH,
    _Answers,
    _parses_to_no_object,
    protected_rpcs,
)


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


class ClusterService(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self._answers = _Answers(runtime.release)

    async def GetSystemSummary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        document = await self._runtime.system_summary()
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


class CallLog(grpc.aio.ServerInterceptor):
    """Checks credentials as the release does, and remembers recent calls' metadata.

    From 1.2.5 the `authorization` metadata (`Bearer ` optional) is compared in constant
    time on protected RPCs only; a core started without a token refuses them all.
    """

    def __init__(self, token: str | None, protected: frozenset[str] = frozenset()) -> None:
        self._token = token
        self._protected = protected
        self.calls: deque[tuple[str, dict[str, str]]] = deque(maxlen=1000)

    def _allowed(self, presented: str) -> bool:
        if not self._token:
            return False
        if presented[:7].lower() == "bearer ":
            presented = presented[7:]
        return hmac.compare_digest(presented.encode(), self._token.encode())

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = {
            k.lower(): v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)
        }
        self.calls.append((details.method, metadata))
        if details.method not in self._protected:
            return await continuation(details)
        if self._allowed(metadata.get("authorization", "")):
            return await continuation(details)
        return grpc.unary_unary_rpc_method_handler(_deny if self._token else _no_token)


async def _deny(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or missing authorization token")


async def _no_token(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED, "this node has no authorization token configured"
    )


class FakeCore:
    """A grpc.aio server around an InMemoryRuntime; start it inside a running loop."""

    def __init__(
        self,
        runtime: InMemoryRuntime,
        *,
        replay: bool = True,
        token: str | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.release = runtime.release
        self.replay = replay
        self.call_log = CallLog(token, protected_rpcs(runtime.release))
        self._admin_token = admin_token
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: grpc.ServerCredentials | None = None,
    ) -> int:
        await self.runtime.start()
        server = grpc.aio.server(
            interceptors=[self.call_log],
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        jobs = JobService(self.runtime, admin_token=self._admin_token, replay=self.replay)
        job_pb2_grpc.add_JobServiceServicer_to_server(jobs, server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(ClusterService(self.runtime), server)
        observability_pb2_grpc.add_ObservabilityServiceServicer_to_server(
            ObservabilityService(self.runtime), server
        )
        address = f"{host}:{port}"
        if credentials is not None:
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        await server.start()
        self._server = server
        return self.port

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        await self.runtime.close()
