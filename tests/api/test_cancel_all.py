"""Cancelling every live job: the core's one call where it has it, else one cancel per job,
each outcome told as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import JobAck
from mn_api.domain.errors import RuntimeFailureError
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
