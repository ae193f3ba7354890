"""mn-fake-core: the in-memory runtime served over the MirrorNeuron core's gRPC protocol.

Any client of the core (the gateway, the CLI, the SDK) can use it. It keeps the real
core's quirks: GetJob answers `{}` for an unknown id, a bad manifest is INVALID_ARGUMENT
listing every problem, ListJobs' limit 0 means 100, forbidden transitions are
FAILED_PRECONDITION. `--legacy` behaves like a released core: no ReplayDeadLetter
(UNIMPLEMENTED) and `follow` ignored on event streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from mn_api.adapters.grpc.errors import MANIFEST_ERROR_SEPARATOR
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
from mn_api.domain.events import EventRecord
from mn_api.entrypoints.cli import load_settings

T = TypeVar("T")
HEARTBEAT_JSON = '{"type":"heartbeat"}'
STREAM_METHOD = "/mirrorneuron.observability.v1.ObservabilityService/StreamEvents"

_CODES: tuple[tuple[type[e.DomainError], grpc.StatusCode], ...] = (
    (e.JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    (e.InvalidTransitionError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (e.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.RuntimeOverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.NotSupportedError, grpc.StatusCode.UNIMPLEMENTED),
)


async def _abort(context: grpc.aio.ServicerContext, error: e.DomainError) -> NoReturn:
    if isinstance(error, e.ManifestInvalidError):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, MANIFEST_ERROR_SEPARATOR.join(error.errors)
        )
    code = next((c for cls, c in _CODES if isinstance(error, cls)), grpc.StatusCode.INTERNAL)
    await context.abort(code, error.detail)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


async def _answer(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    try:
        return await work
    except e.DomainError as error:
        await _abort(context, error)


class JobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self, runtime: InMemoryRuntime, admin_token: str | None) -> None:
        self._runtime = runtime
        self._admin_token = admin_token

    async def SubmitJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await _answer(
            context, self._runtime.submit_job(request.manifest_json, dict(request.payloads))
        )
        return job_pb2.SubmitJobResponse(job_id=ack.job_id, status=ack.status)

    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            document = await self._runtime.get_job(request.job_id)
        except e.JobNotFoundError:
            return job_pb2.GetJobResponse(job_json="{}")
        return job_pb2.GetJobResponse(job_json=document.raw.decode())

    async def ListJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        document = await _answer(
            context, self._runtime.list_jobs(request.limit, request.include_terminal)
        )
        return job_pb2.ListJobsResponse(jobs_json=document.raw.decode())

    async def CancelJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await _answer(context, self._runtime.cancel_job(request.job_id))
        return job_pb2.CancelJobResponse(job_id=ack.job_id, status=ack.status)

    async def PauseJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await _answer(context, self._runtime.pause_job(request.job_id))
        return job_pb2.PauseJobResponse(job_id=ack.job_id, status=ack.status)

    async def ResumeJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await _answer(context, self._runtime.resume_job(request.job_id))
        return job_pb2.ResumeJobResponse(job_id=ack.job_id, status=ack.status)

    async def ClearJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._admin_token and not hmac.compare_digest(request.admin_token, self._admin_token):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong admin token")
        count = await self._runtime.clear_jobs()
        return job_pb2.ClearJobsResponse(cleared_count=count)

    async def ReplayDeadLetter(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ack = await _answer(
            context, self._runtime.replay_dead_letter(request.job_id, request.event_index)
        )
        return job_pb2.ReplayDeadLetterResponse(
            job_id=ack.job_id, status=ack.status, agent_id=ack.agent_id
        )


class LegacyJobService(JobService):
    """A released core: ReplayDeadLetter does not exist there."""

    async def ReplayDeadLetter(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


class ClusterService(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime

    async def GetSystemSummary(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        document = await self._runtime.system_summary()
        return cluster_pb2.GetSystemSummaryResponse(summary_json=document.raw.decode())


class ObservabilityService(observability_pb2_grpc.ObservabilityServiceServicer):
    def __init__(self, runtime: InMemoryRuntime, *, honour_follow: bool) -> None:
        self._runtime = runtime
        self._honour_follow = honour_follow

    async def StreamEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        follow = request.follow and self._honour_follow
        heartbeat = request.heartbeat_interval_ms / 1000 if request.heartbeat_interval_ms else None
        stream = self._runtime.stream_events(
            request.job_id, follow=follow, heartbeat_seconds=heartbeat
        )
        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, EventRecord):
                        yield observability_pb2.EventResponse(event_json=item.document.raw.decode())
                    else:
                        yield observability_pb2.EventResponse(event_json=HEARTBEAT_JSON)
        except e.DomainError as error:
            await _abort(context, error)


class CallLog(grpc.aio.ServerInterceptor):
    """Checks the bearer token when one is set, and remembers recent calls' metadata."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}" if token else None
        self.calls: deque[tuple[str, dict[str, str]]] = deque(maxlen=1000)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        self.calls.append((details.method, metadata))
        presented = metadata.get("authorization", "")
        if self._expected is None or hmac.compare_digest(presented, self._expected):
            return await continuation(details)
        if details.method == STREAM_METHOD:
            return grpc.unary_stream_rpc_method_handler(_deny_stream)
        return grpc.unary_unary_rpc_method_handler(_deny)


async def _deny(_request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


async def _deny_stream(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
    yield  # pragma: no cover - makes this an async generator


class FakeCore:
    """A grpc.aio server around an InMemoryRuntime; start it inside a running loop."""

    def __init__(
        self, runtime: InMemoryRuntime, *, legacy: bool = False, token: str | None = None
    ) -> None:
        self.runtime = runtime
        self.legacy = legacy
        self.call_log = CallLog(token)
        self._token = token
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
        jobs = LegacyJobService if self.legacy else JobService
        job_pb2_grpc.add_JobServiceServicer_to_server(jobs(self.runtime, self._token), server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(ClusterService(self.runtime), server)
        observability_pb2_grpc.add_ObservabilityServiceServicer_to_server(
            ObservabilityService(self.runtime, honour_follow=not self.legacy), server
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mn-fake-core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--legacy", action="store_true", help="behave like a released core")
    parser.add_argument("--token", help="require `authorization: Bearer TOKEN` on every call")
    parser.add_argument("--seed-jobs", type=int, default=0, help="preload N finished jobs")
    parser.add_argument("--seed-events", type=int, default=0, help="with M events each")
    parser.add_argument(
        "--seed-history",
        type=int,
        default=0,
        metavar="EVENTS",
        help="preload one more finished job with this many events",
    )
    parser.add_argument(
        "--step-ms",
        type=int,
        default=None,
        help="pace of the simulation (default: MN_FAKE_STEP_MS, else 50)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    step_ms = args.step_ms
    if step_ms is None:
        step_ms = load_settings().fake_step_ms
    runtime = InMemoryRuntime(step_seconds=max(step_ms, 0) / 1000)
    if args.seed_jobs:
        runtime.seed(args.seed_jobs, args.seed_events)
    if args.seed_history:
        runtime.seed(1, args.seed_history)
    core = FakeCore(runtime, legacy=args.legacy, token=args.token)
    port = await core.start(args.host, args.port)
    mode = "legacy" if args.legacy else "current"
    print(f"mn-fake-core ({mode}) listening on {args.host}:{port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await core.stop(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.step_ms is not None and args.step_ms < 0:
        print("mn-fake-core: --step-ms must not be negative", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
