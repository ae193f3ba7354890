"""mn-fake-core: the in-memory runtime served over the MirrorNeuron core's gRPC protocol.

Any client of the core (the gateway, the CLI, the SDK) can use it. `--release` picks the
core release it behaves like (1.1, 1.2.5 or 1.2.31, the newest by default): which RPCs and
request fields it honours, its documents and event shapes, its answers to pause, resume and
cancel, the status codes and texts of its refusals, and the credentials it checks.
`--legacy` is the 1.1 profile without ReplayDeadLetter. ReplayDeadLetter is our extension
(no released core has it) and is served in every profile unless `--without-replay`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import grpc
import orjson

from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.memory.model import SimulatedNode
from mn_api.adapters.memory.releases import LATEST, RELEASES, CoreRelease
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.domain import errors as e
from mn_api.entrypoints.cli import check_address, load_settings, warn_unknown_variables

T = TypeVar("T")
JOB_SERVICE = "/mirrorneuron.job.v1.JobService/"
CLUSTER_SERVICE = "/mirrorneuron.cluster.v1.ClusterService/"
STREAM_METHOD = "/mirrorneuron.observability.v1.ObservabilityService/StreamEvents"
CONTROL_RPCS = frozenset({"CancelJob", "PauseJob", "ResumeJob"})
UNIMPLEMENTED_TEXT = "Method not implemented!"
# What a generation A core's HTTP/2 server answers for a method it does not have.
GENERATION_A_UNIMPLEMENTED = "Received http2 header with status: 404"
# A generation A core's SubmitJob handler crashes on a manifest that is no JSON object.
HANDLER_CRASH = "Internal Server Error"

_CODES: tuple[tuple[type[e.DomainError], grpc.StatusCode], ...] = (
    (e.JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    (e.InvalidTransitionError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (e.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.RequirementsNotMetError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.RuntimeOverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.NotSupportedError, grpc.StatusCode.UNIMPLEMENTED),
)


def protected_rpcs(release: CoreRelease) -> frozenset[str]:
    """The methods whose `authorization` metadata this release checks (none on 1.1)."""
    if not release.checks_credentials:
        return frozenset()
    methods = {
        JOB_SERVICE + "PauseJob",
        JOB_SERVICE + "ResumeJob",
        JOB_SERVICE + "ReplayDeadLetter",
        CLUSTER_SERVICE + "RemoveNode",
    }
    if release.clear_is_protected:
        methods |= {JOB_SERVICE + "ClearJobs", JOB_SERVICE + "CancelAllJobs"}
    return frozenset(methods)


def elixir_string(text: str) -> str:
    """A string written as Elixir's `inspect` writes it."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("#{", "\\#{")
    )
    return f'"{escaped}"'


def elixir_list(items: Sequence[str]) -> str:
    """A list of strings written as Elixir's `inspect` writes it, as cores send problems."""
    return "[" + ", ".join(elixir_string(item) for item in items) + "]"


def refusal_code(release: CoreRelease, text: str) -> grpc.StatusCode:
    """The status a release gives a refused Cancel/Pause/Resume: INTERNAL up to 1.2.22,
    chosen from the text on 1.2.31 (so "not running" reads as NOT_FOUND there)."""
    if not release.refusal_codes_by_text:
        return grpc.StatusCode.INTERNAL
    lowered = text.lower()
    if "not running" in lowered or "not found" in lowered:
        return grpc.StatusCode.NOT_FOUND
    if "not paused" in lowered or "terminal state" in lowered:
        return grpc.StatusCode.FAILED_PRECONDITION
    if "timeout" in lowered or "timed out" in lowered:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if "backpressure" in lowered or "retry later" in lowered:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if "unavailable" in lowered:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


class _Answers:
    """Turns domain errors into the status codes and texts of one release."""

    def __init__(self, release: CoreRelease) -> None:
        self.release = release

    async def abort(
        self, context: grpc.aio.ServicerContext, error: e.DomainError, rpc: str
    ) -> NoReturn:
        if isinstance(error, e.ManifestInvalidError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, self._problems(error.errors))
        if (
            self.release.gone_coordinator_refusal
            and rpc in ("PauseJob", "ResumeJob")
            and isinstance(error, e.JobNotFoundError | e.CoordinatorGoneError)
        ):
            text = f"job {error.job_id} is not running in the connected cluster"
            await context.abort(grpc.StatusCode.INTERNAL, text)
        if isinstance(error, e.JobNotFoundError):
            text = f"job {error.job_id} was not found"
        else:
            text = error.detail
        if rpc in CONTROL_RPCS:
            await context.abort(refusal_code(self.release, text), text)
        code = next((c for cls, c in _CODES if isinstance(error, cls)), grpc.StatusCode.INTERNAL)
        await context.abort(code, text)
        raise AssertionError("abort returned")  # pragma: no cover - abort always raises

    def _problems(self, errors: Sequence[str]) -> str:
        # The JSON parser's message for text that is not JSON comes on its own (quoted as
        # Elixir's `inspect` writes a string, on generation A cores).
        if len(errors) == 1 and errors[0].startswith("unexpected "):
            return elixir_string(errors[0]) if self.release.gone_coordinator_refusal else errors[0]
        return elixir_list(errors)

    async def missing(self, context: grpc.aio.ServicerContext, present: bool) -> None:
        """Abort as this release does for a method it lacks."""
        if not present:
            text = (
                GENERATION_A_UNIMPLEMENTED
                if self.release.generation_a_documents
                else UNIMPLEMENTED_TEXT
            )
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, text)

    async def run(self, context: grpc.aio.ServicerContext, rpc: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except e.DomainError as error:
            await self.abort(context, error, rpc)

    def version(self) -> dict[str, int]:
        """The `version` field of answers, for releases that fill it."""
        return {"version": 1} if self.release.version_field else {}


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mn-fake-core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument(
        "--release",
        choices=list(RELEASES),
        default=None,
        help=f"the core release to behave like (default: MN_FAKE_CORE_RELEASE, else {LATEST})",
    )
    parser.add_argument(
        "--legacy", action="store_true", help="the 1.1 profile without ReplayDeadLetter"
    )
    parser.add_argument(
        "--without-replay",
        action="store_true",
        help="answer ReplayDeadLetter UNIMPLEMENTED, as every released core does",
    )
    parser.add_argument(
        "--token", help="the node's authorization token (checked on protected RPCs from 1.2.5)"
    )
    parser.add_argument("--admin-token", help="the separate ClearJobs secret of 1.2.5 cores")
    node = SimulatedNode()
    parser.add_argument(
        "--node-cpus",
        type=int,
        default=node.logical_processors,
        help="logical processors of the simulated node (manifests' requirements.cpu)",
    )
    parser.add_argument(
        "--node-memory-mb",
        type=int,
        default=node.memory_mb,
        help="memory of the simulated node (requirements.memory)",
    )
    parser.add_argument(
        "--node-gpus", type=int, default=node.gpus, help="GPUs of the simulated node"
    )
    parser.add_argument(
        "--duplicate-boundary",
        action="store_true",
        help="following streams send the last history event twice, as a core may",
    )
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
    warn_unknown_variables("mn-fake-core")
    settings = load_settings("mn-fake-core")
    if args.port:  # 0 asks for any free port
        check_address(args.host, args.port, "mn-fake-core")
    step_ms = args.step_ms if args.step_ms is not None else settings.fake_step_ms
    release = "1.1" if args.legacy else (args.release or settings.fake_core_release)
    node = SimulatedNode(
        logical_processors=args.node_cpus, memory_mb=args.node_memory_mb, gpus=args.node_gpus
    )
    runtime = InMemoryRuntime(
        release=release,
        node=node,
        step_seconds=max(step_ms, 0) / 1000,
        duplicate_boundary=args.duplicate_boundary,
    )
    if args.seed_jobs:
        runtime.seed(args.seed_jobs, args.seed_events)
    if args.seed_history:
        runtime.seed(1, args.seed_history)
    core = FakeCore(
        runtime,
        replay=not (args.legacy or args.without_replay),
        token=args.token,
        admin_token=args.admin_token,
    )
    try:
        port = await core.start(args.host, args.port)
    except RuntimeError:
        print(
            f"mn-fake-core: cannot listen on {args.host}:{args.port} "
            "(in use, or not an address of this host)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    replay = "with" if core.replay else "without"
    print(
        f"mn-fake-core (release {release}, {replay} ReplayDeadLetter) "
        f"listening on {args.host}:{port}",
        flush=True,
    )
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
    if args.legacy and args.release not in (None, "1.1"):
        print("mn-fake-core: --legacy is the 1.1 profile; drop --release", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()


def _parses_to_no_object(text: str) -> bool:
    """JSON text whose value is not an object (an array, a string, a number)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return not isinstance(value, dict)
