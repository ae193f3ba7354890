"""Webhooks across process lifetimes: a gateway killed between attempts, and replicas
sharing one Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    WEBHOOK_SECRET,
    FakeCoreProcess,
    GatewayProcess,
    WebhookReceiver,
    eventually,
    pipeline_manifest,
    settled,
)

pytestmark = pytest.mark.slow
SECRET = WEBHOOK_SECRET
WEBHOOK_ENV = {
    "MN_API_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "MN_API_WEBHOOK_INSECURE_HOSTS": "127.0.0.1",
    "MN_API_WEBHOOK_SECRET": SECRET,
    "MN_API_WEBHOOK_RETRY_BASE_SECONDS": "1",
    "MN_API_WEBHOOK_POLL_SECONDS": "0.1",
    "MN_API_WEBHOOK_TIMEOUT_SECONDS": "2",
    "MN_API_WEBHOOK_LEASE_SECONDS": "3",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET, fail_first=2).start()
    yield server
    server.stop()


def gateway(tmp_path: Path, core: FakeCoreProcess, **env: str) -> GatewayProcess:
    return GatewayProcess(tmp_path, "grpc", core=core, **WEBHOOK_ENV, **env)


async def test_a_gateway_killed_between_attempts_is_taken_over_and_nothing_is_lost(
    tmp_path: Path, core: FakeCoreProcess, receiver: WebhookReceiver
) -> None:
    first = gateway(tmp_path, core).start()
    try:
        async with httpx.AsyncClient(base_url=first.base, timeout=10) as client:
            # The worker takes 2.5 s: it completes while no gateway is running.
            manifest = pipeline_manifest(collect={"simulate": {"delay_ms": 2500}})
            answer = await client.post(
                "/api/v1/jobs",
                json={
                    "manifest": manifest,
                    "webhook": {"url": receiver.url, "events": ["job_running", "job_completed"]},
                },
            )
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["job_id"]
        await eventually(lambda: len(receiver.requests) >= 1)
    finally:
        # No goodbye: its leases on the watch and the delivery have to run out.
        assert first.process is not None
        first.process.kill()
        first.process.wait()
        first.process = None
    assert receiver.accepted == []

    second = gateway(tmp_path, core).start()
    try:
        await eventually(lambda: len(receiver.accepted) >= 2, within=30)
        async with httpx.AsyncClient(base_url=second.base, timeout=10) as client:
            listing = await settled(client, f"/api/v1/jobs/{job_id}/webhooks", 2)
    finally:
        second.stop()

    assert sorted(r["body"]["type"] for r in receiver.accepted) == ["job_completed", "job_running"]
    assert all(r["verified"] for r in receiver.requests)
    assert all(r["body"]["job_id"] == job_id for r in receiver.requests)
    tries = Counter(r["headers"]["webhook-id"] for r in receiver.requests)
    assert sorted(tries.values()) == [3, 3]
    assert [d["state"] for d in listing["deliveries"]] == ["delivered", "delivered"]
    for delivery in listing["deliveries"]:
        assert [a["status_code"] for a in delivery["attempts"]][-1] == 204


async def test_replicas_sharing_redis_deliver_each_event_once(
    tmp_path: Path, core: FakeCoreProcess, receiver: WebhookReceiver, redis_url: str
) -> None:
    receiver.fail_first = 1
    pair = [
        gateway(
            tmp_path / name,
            core,
            MN_REDIS_URL=redis_url,
            MN_API_BUNDLE_DIR=str(tmp_path / name / "bundles"),
        )
        for name in ("a", "b")
    ]
    for replica in pair:
        replica.tmp_path.mkdir()
        replica.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            jobs = []
            for n in range(6):
                answer = await client.post(
                    f"{pair[n % 2].base}/api/v1/jobs",
                    json={
                        "manifest": pipeline_manifest(),
                        "webhook": {
                            "url": receiver.url,
                            "events": ["job_running", "job_completed"],
                        },
                    },
                )
                assert answer.status_code == 201, answer.text
                jobs.append(answer.json()["job_id"])
            await eventually(lambda: len(receiver.accepted) >= 12, within=30)
            # Every outcome recorded before either replica stops (a stopping replica hands
            # back what it has not recorded). Either replica answers for any job.
            listings = [
                await settled(client, f"{pair[(n + 1) % 2].base}/api/v1/jobs/{job}/webhooks", 2)
                for n, job in enumerate(jobs)
            ]
    finally:
        for replica in pair:
            replica.stop()
    accepted = Counter((r["body"]["job_id"], r["body"]["type"]) for r in receiver.accepted)
    assert set(accepted.values()) == {1}
    assert {job for job, _ in accepted} == set(jobs)
    tries = Counter(r["headers"]["webhook-id"] for r in receiver.requests)
    assert set(tries.values()) == {2}
    for listing in listings:
        assert [d["state"] for d in listing["deliveries"]] == ["delivered", "delivered"]
