"""How GrpcRuntime reads a core's refusals of Pause/Resume/Cancel, against a scripted core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest

from mn_api.adapters.grpc.protos import job_pb2, job_pb2_grpc
from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.domain.errors import (
    CoordinatorGoneError,
    InvalidTransitionError,
    JobNotFoundError,
    RuntimeFailureError,
)
from tests.support import scripted_core

KNOWN = "known-1"


class RefusingCore(job_pb2_grpc.JobServiceServicer):
    """Refuses every control call with one status and text; knows one job."""

    def __init__(self) -> None:
        self.code = grpc.StatusCode.INTERNAL
        self.text = "job is not running"

    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        document = (
            {"job": {"job_id": KNOWN, "status": "pending"}} if request.job_id == KNOWN else {}
        )
        return job_pb2.GetJobResponse(job_json=orjson.dumps(document).decode())

    async def _refuse(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(self.code, self.text)

    PauseJob = ResumeJob = CancelJob = _refuse


@pytest.fixture
async def core() -> AsyncIterator[tuple[RefusingCore, GrpcRuntime]]:
    servicer = RefusingCore()
    async with scripted_core(servicer, job_pb2_grpc.add_JobServiceServicer_to_server) as runtime:
        yield servicer, runtime


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.NOT_FOUND])
async def test_not_running_is_not_found_for_an_unknown_job_and_refused_for_a_known_one(
    core: tuple[RefusingCore, GrpcRuntime], code: grpc.StatusCode
) -> None:
    servicer, runtime = core
    servicer.code = code
    for operation in (runtime.pause_job, runtime.resume_job):
        with pytest.raises(JobNotFoundError):
            await operation("ghost-1")
        with pytest.raises(InvalidTransitionError) as refused:
            await operation(KNOWN)
        assert refused.value.detail == "job is not running"
        assert not isinstance(refused.value, CoordinatorGoneError)


async def test_a_gone_coordinator_is_told_apart_by_asking_for_the_job(
    core: tuple[RefusingCore, GrpcRuntime],
) -> None:
    servicer, runtime = core
    servicer.text = f"job {KNOWN} is not running in the connected cluster"
    with pytest.raises(CoordinatorGoneError) as gone:
        await runtime.pause_job(KNOWN)
    assert gone.value.status == "pending" and "cancelling it ends it" in gone.value.detail
    with pytest.raises(JobNotFoundError):
        await runtime.pause_job("ghost-1")


async def test_clear_refusals_need_no_question_and_unclear_ones_stay_failures(
    core: tuple[RefusingCore, GrpcRuntime],
) -> None:
    servicer, runtime = core
    servicer.text = "job is already in a terminal state"
    with pytest.raises(InvalidTransitionError):
        await runtime.cancel_job("ghost-1")  # the text says it: no lookup decides
    servicer.text = "job ghost-1 was not found"
    with pytest.raises(JobNotFoundError):
        await runtime.cancel_job("ghost-1")
    servicer.text = "the disk is on fire"
    with pytest.raises(RuntimeFailureError):
        await runtime.cancel_job(KNOWN)
    with pytest.raises(JobNotFoundError):
        await runtime.cancel_job("ghost-1")


def _refusing_runtime(error: Exception, on: str) -> Any:
    """An in-memory runtime whose `on` call (get_job, list_jobs or submit_job) raises
    `error`."""
    from mn_api.adapters.memory.runtime import InMemoryRuntime

    class Refusing(InMemoryRuntime):
        async def list_jobs(self, limit: int, include_terminal: bool) -> Any:
            if on == "list_jobs":
                raise error
            return await super().list_jobs(limit, include_terminal)

        async def get_job(self, job_id: str) -> Any:
            if on == "get_job":
                raise error
            return await super().get_job(job_id)

        async def submit_job(self, manifest_json: str, payloads: Any) -> Any:
            if on == "submit_job":
                raise error
            return await super().submit_job(manifest_json, payloads)

    return Refusing(auto_run=False)


def _round_trips() -> list[tuple[Exception, str]]:
    """Every refusal of the fake core's table, with the call that carries it."""
    from mn_api.domain import errors as e
    from mn_api.entrypoints.fake_core.refusals import _CODES

    examples: dict[type, tuple[Exception, str]] = {
        e.JobNotFoundError: (e.JobNotFoundError("job-1-a"), "get_job"),
        e.InvalidTransitionError: (e.InvalidTransitionError("job is not running"), "list_jobs"),
        e.AlreadyExistsError: (e.AlreadyExistsError("job job-1-a already exists"), "list_jobs"),
        e.InvalidArgumentError: (e.InvalidArgumentError("job_id is required"), "list_jobs"),
        e.RequirementsNotMetError: (
            e.RequirementsNotMetError("requirements_not_met: gpu=2 available=0"),
            "submit_job",
        ),
        e.RuntimeOverloadedError: (e.RuntimeOverloadedError("backpressure"), "list_jobs"),
        e.NotSupportedError: (
            e.NotSupportedError("ListJobs is not supported by this core"),
            "list_jobs",
        ),
    }
    assert {cls for cls, _code in _CODES} == set(examples)  # every row has its example
    return [*examples.values(), (e.ManifestInvalidError(["duplicate node_id a"]), "submit_job")]


@pytest.mark.parametrize(("error", "on"), _round_trips(), ids=lambda v: type(v).__name__)
async def test_each_refusal_of_the_fake_core_reads_back_as_the_same_error(
    error: Exception, on: str
) -> None:
    """The fake core's table (domain error → status code and text) and the adapter's
    (status code and text → domain error) are each other's inverse. (GetJob carries only
    an unknown job: cores answer other failures of it with a document.)"""
    from mn_api.entrypoints.fake_core import FakeCore

    core = FakeCore(_refusing_runtime(error, on))
    port = await core.start("127.0.0.1", 0)
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        with pytest.raises(type(error)) as caught:
            if on == "get_job":
                await runtime.get_job("job-1-a")
            elif on == "list_jobs":
                await runtime.list_jobs(10, True)
            else:
                await runtime.submit_job(orjson.dumps({"graph_id": "g"}).decode(), {})
        assert caught.value.detail == error.detail  # type: ignore[attr-defined]
    finally:
        await runtime.close()
        await core.stop(grace=None)
