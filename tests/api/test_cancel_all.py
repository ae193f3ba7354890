"""Cancelling every live job: the core's one call where it has it, else one cancel per job,
each outcome told as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from orjson import dumps

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import JobAck
from mn_api.application.use_cases.cancel_all_jobs import AT_ONCE, CancelAllJobs
from mn_api.domain.errors import RuntimeFailureError, RuntimeTimeoutError
from tests.support import FakeClock, asgi_client, pipeline_manifest

API = "/api/v1"


class RefusingRuntime(InMemoryRuntime):
    """A core that refuses to cancel the jobs named in `refuse`."""

    refuse: frozenset[str] = frozenset()

    async def cancel_job(self, job_id: str) -> JobAck:
        if job_id in self.refuse:
            raise RuntimeFailureError("the core could not reach the job's coordinator")
        return await super().cancel_job(job_id)


async def _jobs(client, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await client.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["job_id"])
    return ids


@pytest.mark.parametrize(
    ("release", "via"), [("1.2.31", "CancelAllJobs"), ("1.2.5", "CancelJob"), ("1.1", "CancelJob")]
)
async def test_every_live_job_is_cancelled_and_named(
    settings_factory: Callable, release: str, via: str
) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False, clock=FakeClock())
    async with asgi_client(settings_factory(), runtime) as client:
        live = await _jobs(client, 3)
        finished = (await _jobs(client, 1))[0]
        await client.post(f"{API}/jobs/{finished}/cancel")
        answer = await client.post(f"{API}/jobs:cancel-all")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["via"] == via and body["status"] == "cancelled"
        assert body["active_count"] == body["cancelled_count"] == 3
        assert sorted(body["cancelled_job_ids"]) == sorted(live) == sorted(body["job_ids"])
        for job_id in live:
            job = (await client.get(f"{API}/jobs/{job_id}")).json()["job"]
            assert job["status"] == "cancelled"
        again = (await client.post(f"{API}/jobs/cancel-all")).json()
        assert again == {
            "status": "no_active_jobs",
            "active_count": 0,
            "cancelled_count": 0,
            "cancelled_job_ids": [],
            "job_ids": [],
            "via": via,
        }


async def test_a_refused_cancel_is_reported_with_its_reason(settings_factory: Callable) -> None:
    runtime = RefusingRuntime(release="1.2.5", auto_run=False, clock=FakeClock())
    async with asgi_client(settings_factory(), runtime) as client:
        first, stuck, last = await _jobs(client, 3)
        runtime.refuse = frozenset({stuck})
        body = (await client.post(f"{API}/jobs:cancel-all")).json()
        assert body["status"] == "partially_cancelled"
        assert body["active_count"] == 3 and body["cancelled_count"] == 2
        assert body["cancelled_job_ids"] == [last, first]  # as listed: newest first
        assert body["failed"] == [
            {
                "job_id": stuck,
                "error": "runtime_error",
                "message": "the core could not reach the job's coordinator",
            }
        ]
        stuck_job = (await client.get(f"{API}/jobs/{stuck}")).json()["job"]
        assert stuck_job["status"] != "cancelled"
        runtime.refuse = frozenset({stuck, "anything"})
        alone = (await client.post(f"{API}/jobs:cancel-all")).json()
        assert alone["status"] == "failed" and alone["cancelled_count"] == 0


class StalledRuntime(InMemoryRuntime):
    """A core that stops answering cancels once `answered` of them have been answered."""

    answered = 0

    async def cancel_job(self, job_id: str) -> JobAck:
        if self.answered <= 0:
            await asyncio.Event().wait()  # never answers
        self.answered -= 1
        return await super().cancel_job(job_id)


async def _submit(runtime: InMemoryRuntime, count: int) -> list[str]:
    return [
        (await runtime.submit_job(dumps(pipeline_manifest()).decode(), {})).job_id
        for _ in range(count)
    ]


async def test_more_live_jobs_than_one_listing_names_are_all_cancelled() -> None:
    runtime = InMemoryRuntime(release="1.2.5", auto_run=False, clock=FakeClock())
    live = await _submit(runtime, 8)
    done = await CancelAllJobs(runtime, scan_limit=3)()
    assert done.status == "cancelled" and done.stopped is None and done.remaining == 0
    assert sorted(done.cancelled) == sorted(live) and done.active == 8
    listing = (await runtime.list_jobs(100, False)).value
    assert listing["data"] == []


async def test_a_core_that_stops_answering_is_left_at_the_time_limit_with_what_remains() -> None:
    runtime = StalledRuntime(release="1.2.5", auto_run=False, clock=FakeClock())
    live = await _submit(runtime, 20)
    runtime.answered = 5
    done = await CancelAllJobs(runtime, time_limit_seconds=0.3)()
    assert done.stopped == "time_limit" and done.status == "partially_cancelled"
    assert len(done.cancelled) == 5 and done.active == 20
    # Sent and never answered (at most AT_ONCE at a time), or never sent at all.
    unanswered = [job_id for job_id, _ in done.refused]
    assert all(isinstance(e, RuntimeTimeoutError) for _, e in done.refused)
    assert 0 < len(unanswered) <= AT_ONCE
    assert len(done.cancelled) + len(unanswered) + done.remaining == 20
    assert set(done.cancelled) | set(unanswered) <= set(live)


async def test_a_full_listing_of_refused_jobs_says_more_may_be_live() -> None:
    runtime = RefusingRuntime(release="1.2.5", auto_run=False, clock=FakeClock())
    live = await _submit(runtime, 5)
    runtime.refuse = frozenset(live)
    done = await CancelAllJobs(runtime, scan_limit=3)()
    assert done.stopped == "listing_limit" and done.status == "failed"
    assert len(done.refused) == 3 and done.remaining == 0


async def test_the_answer_says_where_the_call_stopped(settings_factory: Callable) -> None:
    runtime = StalledRuntime(release="1.2.5", auto_run=False, clock=FakeClock())
    stopping = CancelAllJobs(runtime, time_limit_seconds=0.2)
    async with asgi_client(settings_factory(), runtime, cancel_all_jobs=stopping) as client:
        await _jobs(client, 12)
        body = (await client.post(f"{API}/jobs:cancel-all")).json()
    assert body["stopped"] == "time_limit" and body["status"] == "failed"
    assert body["cancelled_count"] == 0 and body["active_count"] == 12
    assert body["remaining_count"] == 12 - AT_ONCE
    assert {f["error"] for f in body["failed"]} == {"runtime_timeout"}
    assert "call again" in body["message"]
