"""Webhooks end to end: a real receiver on 127.0.0.1, signed deliveries, retries,
redelivery, restarts and replicas."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from tests.support import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    asgi_client,
    eventually,
    local_http_server,
    map_resolver,
    pipeline_manifest,
    settled,
    webhook_secret,
)

SECRET = WEBHOOK_SECRET


def webhook_settings(settings_factory: Any, **extra: Any) -> Any:
    values = {
        "webhook_allowed_hosts_raw": "127.0.0.1",
        "webhook_insecure_hosts_raw": "127.0.0.1",
        "webhook_secret": SECRET,
        "webhook_retry_base_seconds": 0.1,
        "webhook_poll_seconds": 0.05,
        # Generous, so that a slow machine does not turn into extra attempts.
        "webhook_timeout_seconds": 10,
        "webhook_lease_seconds": 30,
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


async def test_a_rotation_is_accepted_by_receivers_of_the_old_and_of_the_new_secret(
    settings_factory: Any,
) -> None:
    new = webhook_secret("the secret that replaces it")
    knows_old = WebhookReceiver(SECRET).start()
    knows_new = WebhookReceiver(new).start()
    settings = webhook_settings(settings_factory, webhook_secret=f"{new} {SECRET}")
    try:
        async with asgi_client(
            settings, InMemoryRuntime(step_seconds=0.002), lifespan=True
        ) as client:
            for receiver in (knows_old, knows_new):
                await submit(client, {"url": receiver.url, "events": ["job_completed"]})
            await eventually(lambda: knows_old.accepted and knows_new.accepted, within=60)
    finally:
        knows_old.stop()
        knows_new.stop()
    for receiver in (knows_old, knows_new):
        assert [r["verified"] for r in receiver.requests] == [True]
        assert len(receiver.requests[0]["headers"]["webhook-signature"].split(" ")) == 2


async def test_each_subscribed_event_is_delivered_once_signed_after_two_failures(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.accept_delay = 0.2  # the gateway learns of each success after the receiver
    job_id = await submit(
        client,
        {"url": receiver.url, "events": ["job_running", "dead_letter", "job_completed"]},
        worker={"simulate": {"drop_first": 1}},
    )
    await eventually(lambda: len(receiver.accepted) >= 3, within=60)

    kinds = [r["body"]["type"] for r in receiver.accepted]
    assert sorted(kinds) == ["dead_letter", "job_completed", "job_running"]
    assert all(r["verified"] for r in receiver.requests)
    # Two refusals, then the acceptance, for every delivery; all three tries share one id.
    tries = Counter(r["headers"]["webhook-id"] for r in receiver.requests)
    assert sorted(tries.values()) == [3, 3, 3]
    done = next(r["body"] for r in receiver.accepted if r["body"]["type"] == "job_completed")
    assert done["job_id"] == job_id
    assert done["status"] == "completed"
    assert done["event"]["type"] == "job_completed"
    assert done["id"] == next(
        r["headers"]["webhook-id"] for r in receiver.accepted if r["body"] == done
    )
    assert done["occurred_at"] == done["event"]["timestamp"]

    listing = await settled(client, f"/api/v1/jobs/{job_id}/webhooks", 3)
    assert [s["url"] for s in listing["subscriptions"]] == [receiver.url]
    assert {d["state"] for d in listing["deliveries"]} == {"delivered"}
    for delivery in listing["deliveries"]:
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
        assert "next_attempt_at" not in delivery  # none is due: left out, never null
        assert all("error" not in a for a in delivery["attempts"])

    metrics = (await client.get("/metrics")).text
    assert 'mn_api_webhook_deliveries_total{outcome="delivered"} 3.0' in metrics
    assert 'mn_api_webhook_deliveries_total{outcome="retry"} 6.0' in metrics


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://localhost.evil.com/hook",
        "https://[::1]/hook",
        "http://[::1]/hook",
        "http://2130706433/hook",
        "http://127.0.0.1@evil.com/hook",
        "http://evil.com@127.0.0.1/hook",
        "ftp://127.0.0.1/hook",
    ],
)
async def test_hostile_webhook_urls_are_refused_before_any_job_exists(
    client: httpx.AsyncClient, url: str
) -> None:
    before = (await client.get("/api/v1/jobs")).json()["data"]
    answer = await client.post(
        "/api/v1/jobs", json={"manifest": pipeline_manifest(), "webhook": {"url": url}}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == "webhook_url_not_allowed"
    assert (await client.get("/api/v1/jobs")).json()["data"] == before


@pytest.mark.parametrize(
    ("webhook", "field"),
    [
        ({"url": "https://127.0.0.1/x", "events": ["job_exploded"]}, "events"),
        ({"url": "https://127.0.0.1/x", "events": []}, "events"),
        ({"url": ""}, "url"),
        ({"events": ["job_completed"]}, "url"),
        ({"url": "https://127.0.0.1/x", "secret": "mine"}, "secret"),
    ],
)
async def test_malformed_webhooks_are_validation_errors(
    client: httpx.AsyncClient, webhook: dict[str, Any], field: str
) -> None:
    answer = await client.post(
        "/api/v1/jobs", json={"manifest": pipeline_manifest(), "webhook": webhook}
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["error"] == "validation_error"
    assert any(e["loc"][:3] == ["body", "webhook", field] for e in problem["errors"])


async def test_webhooks_are_refused_while_no_host_is_allowed(settings_factory: Any) -> None:
    async with asgi_client(settings_factory(), InMemoryRuntime(step_seconds=0.002)) as client:
        answer = await client.post(
            "/api/v1/jobs",
            json={"manifest": pipeline_manifest(), "webhook": {"url": "https://example.com/"}},
        )
    assert answer.status_code == 422
    assert answer.json()["error"] == "webhook_url_not_allowed"
    assert "MN_API_WEBHOOK_ALLOWED_HOSTS" in answer.json()["detail"]


async def test_listing_webhooks_of_unknown_and_unsubscribed_jobs(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/jobs/no-such-job/webhooks")
    assert (missing.status_code, missing.json()["error"]) == (404, "job_not_found")
    plain = await client.post("/api/v1/jobs", json={"manifest": pipeline_manifest()})
    job_id = plain.json()["job_id"]
    listing = await client.get(f"/api/v1/jobs/{job_id}/webhooks")
    assert listing.json() == {"job_id": job_id, "subscriptions": [], "deliveries": []}
    unknown = await client.post(f"/api/v1/jobs/{job_id}/webhooks/whd_{'0' * 24}/redeliver")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "webhook_delivery_not_found")
    malformed = await client.post(f"/api/v1/jobs/{job_id}/webhooks/nope/redeliver")
    assert malformed.status_code == 422


async def test_redeliver_sends_the_same_delivery_again(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 0
    receiver.accept_delay = 0.2
    job_id = await submit(client, {"url": receiver.url + "?token=query-secret-7f3e"})
    await settled(client, f"/api/v1/jobs/{job_id}/webhooks", 1)
    first = receiver.accepted[0]
    ident = first["headers"]["webhook-id"]

    answer = await client.post(f"/api/v1/jobs/{job_id}/webhooks/{ident}/redeliver")
    assert answer.status_code == 200, answer.text
    delivery = answer.json()
    assert delivery["state"] == "delivered"
    assert [a["manual"] for a in delivery["attempts"]] == [False, True]
    assert len(receiver.accepted) == 2
    again = receiver.accepted[1]
    assert again["headers"]["webhook-id"] == ident
    assert again["body"] == first["body"]
    assert again["path"] == "/hooks?token=query-secret-7f3e"
    assert again["verified"]

    listing = (await client.get(f"/api/v1/jobs/{job_id}/webhooks")).json()
    assert listing["subscriptions"][0]["url"] == receiver.url + "?redacted"
    assert "query-secret-7f3e" not in str(listing)


async def test_a_bundle_submitted_on_upload_takes_a_webhook(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    import orjson

    from tests.support import make_zip

    receiver.fail_first = 0
    archive = make_zip({"manifest.json": orjson.dumps(pipeline_manifest())})
    webhook = orjson.dumps({"url": receiver.url, "events": ["job_running", "job_completed"]})
    answer = await client.post(
        "/api/v1/bundles/upload?submit=true",
        files={"bundle": ("job.zip", archive, "application/zip")},
        data={"webhook": webhook.decode()},
    )
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    await eventually(lambda: len(receiver.accepted) >= 2)
    assert [r["body"]["job_id"] for r in receiver.accepted] == [job_id, job_id]

    refused = await client.post(
        "/api/v1/bundles/upload?submit=true",
        files={"bundle": ("job.zip", archive, "application/zip")},
        data={"webhook": '{"url": "http://169.254.169.254/"}'},
    )
    assert refused.json()["error"] == "webhook_url_not_allowed"
    without_submit = await client.post(
        "/api/v1/bundles/upload",
        files={"bundle": ("job.zip", archive, "application/zip")},
        data={"webhook": webhook.decode()},
    )
    assert without_submit.json()["error"] == "validation_error"
    not_json = await client.post(
        "/api/v1/bundles/upload?submit=true",
        files={"bundle": ("job.zip", archive, "application/zip")},
        data={"webhook": "{nope"},
    )
    assert not_json.json()["error"] == "validation_error"


async def test_global_webhooks_hear_of_every_job(
    settings_factory: Any, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 0
    settings = webhook_settings(
        settings_factory,
        webhook_urls_raw=receiver.url,
        webhook_events_raw="job_completed,job_cancelled",
    )
    runtime = InMemoryRuntime(step_seconds=0.002)
    async with asgi_client(settings, runtime, lifespan=True) as client:
        jobs = []
        for _ in range(3):
            answer = await client.post("/api/v1/jobs", json={"manifest": pipeline_manifest()})
            jobs.append(answer.json()["job_id"])
        await eventually(lambda: len(receiver.accepted) >= 3)
        listing = (await client.get(f"/api/v1/jobs/{jobs[0]}/webhooks")).json()
    assert sorted(r["body"]["job_id"] for r in receiver.accepted) == sorted(jobs)
    assert listing["subscriptions"][0]["source"] == "global"
    assert listing["subscriptions"][0]["events"] == ["job_completed", "job_cancelled"]


async def test_a_pattern_host_resolving_to_loopback_is_refused(settings_factory: Any) -> None:
    settings = webhook_settings(settings_factory, webhook_allowed_hosts_raw="*.evil.com")
    resolver = map_resolver({"localhost.evil.com": [["127.0.0.1"]], "ok.evil.com": [["8.8.8.8"]]})
    runtime = InMemoryRuntime(step_seconds=0.002)
    async with asgi_client(settings, runtime, resolver=resolver) as client:
        refused = await client.post(
            "/api/v1/jobs",
            json={
                "manifest": pipeline_manifest(),
                "webhook": {"url": "https://localhost.evil.com/"},
            },
        )
        accepted = await client.post(
            "/api/v1/jobs",
            json={"manifest": pipeline_manifest(), "webhook": {"url": "https://ok.evil.com/"}},
        )
    assert refused.status_code == 422
    assert refused.json()["error"] == "webhook_url_not_allowed"
    assert "resolves to a loopback address 127.0.0.1" in refused.json()["detail"]
    assert accepted.status_code == 201


async def test_a_job_whose_webhook_cannot_be_recorded_is_taken_back(
    settings_factory: Any, tmp_path: Any, receiver: WebhookReceiver
) -> None:
    from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore

    broken = SqliteWebhookStore(tmp_path)  # a folder, not a database file
    runtime = InMemoryRuntime(step_seconds=0.002)
    settings = webhook_settings(settings_factory)
    async with asgi_client(settings, runtime, webhook_store=broken) as client:
        answer = await client.post(
            "/api/v1/jobs",
            json={"manifest": pipeline_manifest(), "webhook": {"url": receiver.url}},
        )
        jobs = (await client.get("/api/v1/jobs")).json()["data"]
    assert answer.status_code == 503
    assert answer.json()["error"] == "shared_state_unavailable"
    assert str(tmp_path) not in answer.text
    assert [job["status"] for job in jobs] == ["cancelled"]


async def test_a_receiver_that_hangs_holds_up_only_its_own_deliveries(
    settings_factory: Any, receiver: WebhookReceiver
) -> None:
    import threading

    receiver.fail_first = 0
    release, arrived = threading.Event(), threading.Event()

    def hang(handler: Any) -> None:
        arrived.set()
        release.wait(30)
        handler.send_response(204)
        handler.end_headers()

    # The hanging request is given far longer than the test waits for the other one.
    settings = webhook_settings(
        settings_factory, webhook_timeout_seconds=60, webhook_lease_seconds=120
    )
    with local_http_server(hang) as hanging:
        try:
            async with asgi_client(
                settings, InMemoryRuntime(step_seconds=0.002), lifespan=True
            ) as c:
                stuck = await submit(c, {"url": f"{hanging}/"})
                await eventually(arrived.is_set)
                listing = (await c.get(f"/api/v1/jobs/{stuck}/webhooks")).json()
                [sending] = listing["deliveries"]
                assert (sending["state"], sending["attempts"]) == ("pending", [])
                # Being sent right now: a second send by hand has to wait.
                busy = await c.post(f"/api/v1/jobs/{stuck}/webhooks/{sending['id']}/redeliver")
                assert busy.status_code == 409
                assert busy.json()["error"] == "webhook_delivery_in_flight"
                fast = await submit(c, {"url": receiver.url})
                # Delivered while the other receiver still has not answered.
                await eventually(lambda: len(receiver.accepted) >= 1)
                assert not release.is_set()
                assert [r["body"]["job_id"] for r in receiver.accepted] == [fast]
        finally:
            release.set()
