"""How each core release refuses and answers: status codes and texts, missing RPCs, the
credentials it checks, and the Elixir-quoted texts of generation A."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import NoReturn, TypeVar

import grpc
import orjson

from mn_api.adapters.memory.model import PersistFailedError
from mn_api.adapters.memory.releases import CoreRelease
from mn_api.adapters.memory.services._base import CLUSTER, JOB_V1, OPERATIONS
from mn_api.domain import errors as e

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


# Later methods whose `authorization` metadata the releases that serve them check (CORE.md §9:
# backups, node and service administration, operations).
LATER_PROTECTED = frozenset(
    {
        JOB_V1 + "ExportJobBackup",
        JOB_V1 + "RestoreJobBackup",
        *(
            CLUSTER + name
            for name in (
                "ReconcileNode",
                "DrainNode",
                "CancelNodeDrain",
                "SetNodeMaintenance",
                "GetNodeDrainStatus",
                "ListServices",
                "ResolveService",
                "CheckServices",
            )
        ),
        *(
            OPERATIONS + name
            for name in ("StartOperation", "GetOperation", "StreamOperationEvents")
        ),
    }
)


def protected_rpcs(release: CoreRelease, offered: Iterable[str] = ()) -> frozenset[str]:
    """The methods whose `authorization` metadata this release checks (none on 1.1); of the
    later methods, those of `offered` (the ones the release serves)."""
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
    return frozenset(methods | (LATER_PROTECTED & set(offered)))


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
        if isinstance(error, PersistFailedError):
            # The state store's error on its own, not a list of problems (inspect-quoted on
            # generation A cores).
            text = error.errors[0]
            if self.release.generation_a_documents:
                text = elixir_string(text)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, text)
        if isinstance(error, e.ManifestInvalidError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, self._problems(error.errors))
        if rpc in ("PauseJob", "ResumeJob") and (
            isinstance(error, e.CoordinatorGoneError)
            or (self.release.gone_coordinator_refusal and isinstance(error, e.JobNotFoundError))
        ):
            # No coordinator in the cluster runs the job (on generation A, unknown jobs too).
            text = f"job {error.job_id} is not running in the connected cluster"
            await context.abort(refusal_code(self.release, text), text)
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


def _parses_to_no_object(text: str) -> bool:
    """JSON text whose value is not an object (an array, a string, a number)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return not isinstance(value, dict)
