"""Sending one delivery: the httpx adapter's contract (respx) and the guard on addresses."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.adapters.webhooks.notifier import HttpxNotifier
from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore
from mn_api.application.webhooks import DeliverySender, WebhookConfig, WebhookRequest, Webhooks
from mn_api.domain.errors import WebhookUrlNotAllowedError
from mn_api.domain.webhooks.records import Delivery, DeliveryState
from mn_api.domain.webhooks.signing import parse_secrets
from mn_api.domain.webhooks.url_policy import UrlPolicy
from tests.support import (
    EPOCH,
    WEBHOOK_SECRET,
    FakeClock,
    WebhookReceiver,
    local_http_server,
    map_resolver,
)

SECRET = WEBHOOK_SECRET
URL = "https://hooks.example.com/in"
OWNER = "tester"


def config(**extra: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "policy": UrlPolicy.of(["hooks.example.com", "*.example.test", "127.0.0.1"], ["127.0.0.1"]),
        "secrets": parse_secrets(SECRET),
        "max_attempts": 3,
        "retry_base_seconds": 10,
    }
    values.update(extra)
    return WebhookConfig(**values)


class Rig:
    def __init__(
        self, tmp_path: Path, notifier: HttpxNotifier, cfg: WebhookConfig, clock: Any = None
    ) -> None:
        self.clock = clock or FakeClock()
        self.store = SqliteWebhookStore(tmp_path / "state.sqlite3")
        self.telemetry = PrometheusTelemetry()
        self.sender = DeliverySender(
            self.store, notifier, self.telemetry, cfg, clock=self.clock, jitter=lambda: 0.5
        )

    async def held(self, url: str = URL, **fields: Any) -> Delivery:
        delivery = Delivery(
            id="whd_0123456789abcdef01234567",
            job_id="job-1",
            subscription_id="whs_1",
            url=url,
            event_type="job_completed",
            event_index=7,
            body='{"id":"whd_0123456789abcdef01234567","type":"job_completed"}',
            created_at=EPOCH,
            next_attempt_at=EPOCH,
            **fields,
        )
        await self.store.add_deliveries([delivery])
        [claimed] = await self.store.claim_deliveries(OWNER, EPOCH + 1, EPOCH + 60, 10)
        return claimed

    def outcomes(self) -> dict[str, float]:
        return {
            s.labels["outcome"]: s.value
            for metric in self.telemetry.registry.collect()
            if metric.name == "mn_api_webhook_deliveries"
            for s in metric.samples
            if s.name.endswith("_total")
        }


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_mocked=True, assert_all_called=False)


@pytest.fixture
async def rig(tmp_path: Path, router: respx.MockRouter) -> AsyncIterator[Rig]:
    cfg = config()
    notifier = HttpxNotifier(
        cfg.policy, map_resolver({}), transport=httpx.MockTransport(router.async_handler)
    )
    yield Rig(tmp_path, notifier, cfg)
    await notifier.close()


async def test_the_request_is_signed_over_the_exact_bytes_sent(
    rig: Rig, router: respx.MockRouter
) -> None:
    route = router.post(URL).mock(return_value=httpx.Response(200))
    delivery = await rig.held()
    result = await rig.sender.attempt(delivery, OWNER)

    sent = route.calls.last.request
    assert sent.content == delivery.body.encode()
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["webhook-id"] == delivery.id
    timestamp = sent.headers["webhook-timestamp"]
    assert timestamp == str(int(rig.clock()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    content = f"{delivery.id}.{timestamp}.".encode() + sent.content
    mac = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert sent.headers["webhook-signature"] == f"v1,{mac}"
    assert sent.headers["User-Agent"].startswith("MirrorNeuron-Webhooks")

    assert result.state is DeliveryState.DELIVERED
    assert result.next_attempt_at is None
    [stored] = await rig.store.deliveries("job-1")
    assert stored == result
    assert [a.status_code for a in stored.attempts] == [200]
    assert rig.outcomes() == {"delivered": 1.0}


@pytest.mark.parametrize(
    ("answer", "recorded"),
    [
        (httpx.Response(500), {"status_code": 500, "error": None}),
        (httpx.Response(404), {"status_code": 404, "error": None}),
        (httpx.ReadTimeout("slow"), {"status_code": None, "error": "read timeout"}),
        (httpx.ConnectTimeout("slow"), {"status_code": None, "error": "connect timeout"}),
        (httpx.ConnectError("refused"), {"status_code": None, "error": "connection failed"}),
    ],
)
async def test_failures_are_retried_after_a_backoff(
    rig: Rig, router: respx.MockRouter, answer: Any, recorded: dict[str, Any]
) -> None:
    router.post(URL).mock(side_effect=[answer])
    result = await rig.sender.attempt(await rig.held(), OWNER)
    attempt = result.attempts[-1]
    assert {"status_code": attempt.status_code, "error": attempt.error} == recorded
    assert result.state is DeliveryState.PENDING
    # base 10 s x 4^0, jitter in the middle of its range: exactly the base.
    assert result.next_attempt_at == pytest.approx(rig.clock() + 10)
    assert rig.outcomes() == {"retry": 1.0}
    # Not due again before its time.
    assert await rig.store.claim_deliveries(OWNER, rig.clock() + 9, rig.clock() + 60, 10) == []
    assert await rig.store.claim_deliveries(OWNER, rig.clock() + 10, rig.clock() + 60, 10)


async def test_redirects_are_not_followed(rig: Rig, router: respx.MockRouter) -> None:
    router.post(URL).mock(
        return_value=httpx.Response(307, headers={"Location": "http://169.254.169.254/"})
    )
    elsewhere = router.route(host="169.254.169.254").mock(return_value=httpx.Response(200))
    result = await rig.sender.attempt(await rig.held(), OWNER)
    assert not elsewhere.called
    assert result.attempts[-1].status_code == 307
    assert result.state is DeliveryState.PENDING


async def test_gone_stops_at_once_and_the_last_attempt_gives_up(
    rig: Rig, router: respx.MockRouter
) -> None:
    router.post(URL).mock(side_effect=[httpx.Response(410)])
    gone = await rig.sender.attempt(await rig.held(), OWNER)
    assert (gone.state, gone.next_attempt_at) == (DeliveryState.FAILED, None)

    router.post(URL).mock(return_value=httpx.Response(503))
    delivery = await rig.store.claim_delivery("job-1", gone.id, OWNER, EPOCH, EPOCH + 60)
    # Back to pending by hand is what redeliver does; here: the third of three attempts.
    third = await rig.sender.attempt(
        Delivery(**{**_fields(delivery), "state": DeliveryState.PENDING}), OWNER
    )
    assert len(third.attempts) == 2
    assert third.state is DeliveryState.PENDING
    delivery = await rig.store.claim_delivery("job-1", gone.id, OWNER, EPOCH, EPOCH + 60)
    last = await rig.sender.attempt(delivery, OWNER)
    assert (last.state, last.next_attempt_at) == (DeliveryState.FAILED, None)
    assert rig.outcomes() == {"gone": 1.0, "retry": 1.0, "exhausted": 1.0}


async def test_a_settled_delivery_sent_by_hand_only_changes_on_success(
    rig: Rig, router: respx.MockRouter
) -> None:
    router.post(URL).mock(side_effect=[httpx.Response(200), httpx.Response(500)])
    done = await rig.sender.attempt(await rig.held(), OWNER)
    again = await rig.store.claim_delivery("job-1", done.id, OWNER, EPOCH, EPOCH + 60)
    manual = await rig.sender.attempt(again, OWNER, manual=True)
    assert manual.state is DeliveryState.DELIVERED
    assert [(a.status_code, a.manual) for a in manual.attempts] == [(200, False), (500, True)]


async def test_urls_no_longer_allowed_are_refused_without_a_request(
    rig: Rig, router: respx.MockRouter
) -> None:
    result = await rig.sender.attempt(await rig.held(url="https://gone.example.org/x"), OWNER)
    assert not router.calls
    assert result.state is DeliveryState.FAILED
    assert "not in MN_API_WEBHOOK_ALLOWED_HOSTS" in (result.attempts[-1].error or "")
    assert rig.outcomes() == {"refused": 1.0}


async def test_an_attempt_stopped_half_way_lets_go_of_the_delivery_unchanged(
    rig: Rig, router: respx.MockRouter
) -> None:
    reached = asyncio.Event()

    async def never_answers(_request: httpx.Request) -> httpx.Response:
        reached.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    router.post(URL).mock(side_effect=never_answers)
    held = await rig.held()
    # Held for a minute, so only letting go makes it claimable again at once.
    assert await rig.store.claim_deliveries(OWNER, EPOCH + 2, EPOCH + 60, 10) == []
    sending = asyncio.create_task(rig.sender.attempt(held, OWNER))
    await reached.wait()
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    [again] = await rig.store.claim_deliveries("another", EPOCH + 2, EPOCH + 60, 10)
    assert (again.id, again.attempts, again.state) == (held.id, (), DeliveryState.PENDING)
    assert rig.outcomes() == {}


def _fields(delivery: Delivery) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in Delivery.__slots__}


# Real connections: the guard sits where the socket is opened.


@pytest.fixture
def listener() -> Any:
    receiver = WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


async def test_a_host_that_resolves_inside_is_never_connected_to(
    tmp_path: Path, listener: WebhookReceiver
) -> None:
    port = listener.url.split(":")[2].split("/")[0]
    cfg = config()
    # Public when the subscription was checked, loopback when the request is made.
    resolver = map_resolver({"rebind.example.test": [["93.184.216.34"], ["127.0.0.1"]]})
    notifier = HttpxNotifier(cfg.policy, resolver)
    rig = Rig(tmp_path, notifier, cfg)
    try:
        webhooks = Webhooks(rig.store, resolver, cfg)
        url = f"https://rebind.example.test:{port}/hooks"
        [planned] = await webhooks.plan(WebhookRequest(url))
        result = await rig.sender.attempt(await rig.held(url=planned.target.url), OWNER)
    finally:
        await notifier.close()
    assert listener.requests == []
    assert result.state is DeliveryState.FAILED
    assert "loopback" in (result.attempts[-1].error or "")


async def test_localhost_names_are_refused_when_the_submission_is_checked(tmp_path: Path) -> None:
    cfg = config()
    resolver = map_resolver(
        {"localhost.example.test": [["127.0.0.1"]], "v6.example.test": [["::1"]]}
    )
    webhooks = Webhooks(SqliteWebhookStore(tmp_path / "s.sqlite3"), resolver, cfg)
    for url in (
        "https://localhost.example.test/",
        "https://v6.example.test/",
        "https://no.example.test/",
    ):
        with pytest.raises(WebhookUrlNotAllowedError):
            await webhooks.plan(WebhookRequest(url))


async def test_an_exactly_listed_local_receiver_gets_the_request(
    tmp_path: Path, listener: WebhookReceiver
) -> None:
    cfg = config()
    notifier = HttpxNotifier(cfg.policy, map_resolver({"127.0.0.1": [["127.0.0.1"]]}))
    rig = Rig(tmp_path, notifier, cfg, clock=time.time)
    try:
        result = await rig.sender.attempt(await rig.held(url=listener.url), OWNER)
    finally:
        await notifier.close()
    assert result.state is DeliveryState.DELIVERED
    assert [r["verified"] for r in listener.requests] == [True]


async def attempt_against(tmp_path: Path, do_post: Any, **timeouts: float) -> Delivery:
    """One attempt at a local receiver that answers with `do_post`."""
    cfg = config()
    notifier = HttpxNotifier(cfg.policy, map_resolver({"127.0.0.1": [["127.0.0.1"]]}), **timeouts)
    rig = Rig(tmp_path, notifier, cfg)
    try:
        with local_http_server(do_post) as base:
            return await rig.sender.attempt(await rig.held(url=f"{base}/in"), OWNER)
    finally:
        await notifier.close()


async def test_a_receiver_slower_than_the_read_timeout_is_a_timeout(tmp_path: Path) -> None:
    def slow(handler: Any) -> None:
        time.sleep(1.0)
        handler.send_response(200)
        handler.end_headers()

    result = await attempt_against(tmp_path, slow, read_timeout=0.2)
    assert result.attempts[-1].error == "read timeout"
    assert result.state is DeliveryState.PENDING


async def test_a_receiver_trickling_its_answer_is_cut_off(tmp_path: Path) -> None:
    def trickle(handler: Any) -> None:
        # Each byte comes well within the read timeout; the whole answer never does.
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)

    result = await attempt_against(tmp_path, trickle, connect_timeout=0.2, read_timeout=0.3)
    assert result.attempts[-1].error == "deadline exceeded"
    assert result.state is DeliveryState.PENDING
