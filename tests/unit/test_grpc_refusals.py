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
