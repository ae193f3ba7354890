"""How GrpcRuntime follows a job on a core that does not follow (it ends each stream after the
history) once the job's status says it ended: one more read picks up the event that ended it,
and a history that still lacks it is taken as whole after that one read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest

from mn_api.adapters.grpc import runtime as grpc_runtime
from mn_api.adapters.grpc.protos import (
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.domain.events import EventRecord
from tests.support import scripted_core


def _event(n: int, kind: str = "agent_message_received") -> str:
    return orjson.dumps({"type": kind, "timestamp": f"t{n:06d}", "job_id": "j-1"}).decode()


class PollingCore(
    job_pb2_grpc.JobServiceServicer, observability_pb2_grpc.ObservabilityServiceServicer
):
    """A core that ignores `follow`: each stream is the history, then its end. It counts the
    streams it was asked for."""

    def __init__(self) -> None:
        self.history = [_event(n) for n in range(50)]
        self.status = "completed"
        self.streams = 0
        self.after_first: str | None = None  # appended once the first stream has ended

    async def GetJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        document = {"job": {"job_id": request.job_id, "status": self.status}}
        return job_pb2.GetJobResponse(job_json=orjson.dumps(document).decode())

    async def StreamEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        self.streams += 1
        for raw in list(self.history):
            yield observability_pb2.EventResponse(event_json=raw, version=1)
        if self.after_first is not None:
            self.history.append(self.after_first)
            self.after_first = None


@pytest.fixture
async def core() -> AsyncIterator[tuple[PollingCore, GrpcRuntime]]:
    servicer = PollingCore()
    async with scripted_core(
        servicer,
        job_pb2_grpc.add_JobServiceServicer_to_server,
        observability_pb2_grpc.add_ObservabilityServiceServicer_to_server,
    ) as runtime:
        yield servicer, runtime


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_runtime, "FINISHING_PAUSE", 0.01)


async def _followed(runtime: GrpcRuntime) -> list[str]:
    stream = runtime.stream_events("j-1", follow=True)
    seen = [
        orjson.loads(item.document.raw)["timestamp"]
        async for item in stream
        if isinstance(item, EventRecord)
    ]
    return seen


async def test_an_ended_job_without_its_end_event_costs_one_more_read(
    core: tuple[PollingCore, GrpcRuntime],
) -> None:
    servicer, runtime = core
    seen = await asyncio.wait_for(_followed(runtime), 10)
    assert seen == [f"t{n:06d}" for n in range(50)]
    assert servicer.streams == 2  # the history, and once more after a pause


async def test_the_end_event_recorded_after_the_status_is_read_by_that_read(
    core: tuple[PollingCore, GrpcRuntime],
) -> None:
    servicer, runtime = core
    servicer.after_first = _event(50, "job_completed")
    seen = await asyncio.wait_for(_followed(runtime), 10)
    assert seen == [f"t{n:06d}" for n in range(51)]
    assert servicer.streams == 2


async def test_a_history_that_shows_its_end_is_read_once(
    core: tuple[PollingCore, GrpcRuntime],
) -> None:
    servicer, runtime = core
    servicer.history.append(_event(50, "job_completed"))
    seen = await asyncio.wait_for(_followed(runtime), 10)
    assert len(seen) == 51 and servicer.streams == 1
