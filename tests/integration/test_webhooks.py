"""Webhooks end to end: a real receiver on 127.0.0.1, signed deliveries, retries,
redelivery, restarts and replicas."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from tests.support import WebhookReceiver, asgi_client, eventually, pipeline_manifest

SECRET = "receiver-shared-secret-0123456789"


def webhook_settings(settings_factory: Any, **extra: Any) -> Any:
    values = {
        "webhook_allowed_hosts_raw": "127.0.0.1",
        "webhook_insecure_hosts_raw": "127.0.0.1",
        "webhook_secret": SECRET,
        "webhook_retry_base_seconds": 0.1,
        "webhook_poll_seconds": 0.05,
        "webhook_timeout_seconds": 2,
        "webhook_lease_seconds": 5,
    }
    values.update(extra)
    return settings_factory(**values)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET, fail_first=2).start()
    yield server
    server.stop()


@pytest.fixture
async def client(settings_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    runtime = InMemoryRuntime(step_seconds=0.002)
    async with asgi_client(webhook_settings(settings_factory), runtime, lifespan=True) as c:
        yield c


async def submit(client: httpx.AsyncClient, webhook: dict[str, Any], **manifest: Any) -> str:
    answer = await client.post(
        "/api/v1/jobs", json={"manifest": pipeline_manifest(**manifest), "webhook": webhook}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["job_id"]


async def test_each_subscribed_event_is_delivered_once_signed_after_two_failures(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    job_id = await submit(
        client,
        {"url": receiver.url, "events": ["job_running", "dead_letter", "job_completed"]},
        worker={"simulate": {"drop_first": 1}},
    )
    await eventually(lambda: len(receiver.accepted) == 3, within=20)

    kinds = [r["body"]["type"] for r in receiver.accepted]
    assert sorted(kinds) == ["dead_letter", "job_completed", "job_running"]
    assert all(r["verified"] for r in receiver.requests)
    # Two refusals, then the acceptance, for every delivery; all three tries share one id.
    tries = Counter(r["headers"]["MN-Webhook-Id"] for r in receiver.requests)
    assert sorted(tries.values()) == [3, 3, 3]
    done = next(r["body"] for r in receiver.accepted if r["body"]["type"] == "job_completed")
    assert done["job_id"] == job_id
    assert done["status"] == "completed"
    assert done["event"]["type"] == "job_completed"
    assert done["id"] == next(
        r["headers"]["MN-Webhook-Id"] for r in receiver.accepted if r["body"] == done
    )
    assert done["occurred_at"] == done["event"]["timestamp"]

    listing = (await client.get(f"/api/v1/jobs/{job_id}/webhooks")).json()
    assert [s["url"] for s in listing["subscriptions"]] == [receiver.url]
    assert {d["state"] for d in listing["deliveries"]} == {"delivered"}
    for delivery in listing["deliveries"]:
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
        assert delivery["next_attempt_at"] is None

    metrics = (await client.get("/metrics")).text
    assert 'mn_api_webhook_deliveries_total{outcome="delivered"} 3.0' in metrics
    assert 'mn_api_webhook_deliveries_total{outcome="retry"} 6.0' in metrics
