"""The webhook worker's own life: it starts, and it stops whatever moment stop() comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.adapters.webhooks.notifier import HttpxNotifier
from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore
from mn_api.application.ports import NotifierPort, SendResult
from mn_api.application.use_cases.stream_events import StreamEvents
from mn_api.application.webhooks import DeliverySender, WebhookConfig
from mn_api.application.webhooks.worker import WebhookWorker
from mn_api.domain.webhooks.records import Delivery, delivery_id
from mn_api.domain.webhooks.url_policy import UrlPolicy
from tests.support import eventually, map_resolver

POLICY = UrlPolicy.of(["*.example.test"], [])


def loops_alive() -> list[str]:
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name() in {"webhook-watch", "webhook-dispatch"} and not t.done()
    ]


async def test_stop_ends_both_loops_even_when_a_wake_up_comes_at_the_same_moment(
    tmp_path: Path,
) -> None:
    cfg = WebhookConfig(
        policy=UrlPolicy.of(["127.0.0.1"], []), secrets=(b"s" * 32,), poll_seconds=30
    )
    store = SqliteWebhookStore(tmp_path / "state.sqlite3")
    notifier = HttpxNotifier(
        cfg.policy, map_resolver({}), transport=httpx.MockTransport(lambda _: httpx.Response(204))
    )
    sender = DeliverySender(store, notifier, PrometheusTelemetry(), cfg)
    worker = WebhookWorker(store, sender, StreamEvents(InMemoryRuntime(), 1.0), cfg, owner="tester")
    try:
        for _ in range(5):
            worker.start()
            await asyncio.sleep(0.05)  # both loops are waiting for work
            assert sorted(loops_alive()) == ["webhook-dispatch", "webhook-watch"]
            worker.wake()  # the wake-up and the cancellation reach the loop together
            # Waited on without being cancelled, so a loop that swallowed its
            # cancellation shows as a stop() that never ends.
            stopping = asyncio.ensure_future(worker.stop())
            done, _ = await asyncio.wait({stopping}, timeout=5)
            assert stopping in done, f"stop() still waiting for {loops_alive()}"
            assert loops_alive() == []
    finally:
        for task in asyncio.all_tasks():
            if task.get_name().startswith("webhook-"):
                task.cancel()
        await notifier.close()


class Receivers(NotifierPort):
    """Receivers by host: those named slow hold every request until released; the others
    answer at once. Counts what is in flight at each."""

    def __init__(self, slow: set[str]) -> None:
        self.slow = slow
        self.release = asyncio.Event()
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.answered: list[str] = []

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        host = urlsplit(url).hostname or ""
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.most[host] = max(self.most.get(host, 0), self.in_flight[host])
        try:
            if host in self.slow:
                await self.release.wait()
            self.answered.append(host)
            return SendResult(0.001, status_code=204)
        finally:
            self.in_flight[host] -= 1


def _deliveries(host: str, count: int, *, at: float) -> list[Delivery]:
    return [
        Delivery(
            id=delivery_id(f"whs_{host}", n),
            job_id=f"job-{host}",
            subscription_id=f"whs_{host}",
            url=f"https://{host}/in",
            event_type="job_completed",
            event_index=n,
            body="{}",
            created_at=at,
            next_attempt_at=at + n * 0.001,
        )
        for n in range(count)
    ]


async def _healthy_answered_while_slow_hold(
    tmp_path: Path, slow: dict[str, int], cfg: WebhookConfig
) -> Receivers:
    """Deliveries to the slow receivers fall due first, then one to a healthy receiver:
    it must be answered while every slow request is still held."""
    store = SqliteWebhookStore(tmp_path / "state.sqlite3")
    receivers = Receivers(set(slow))
    sender = DeliverySender(store, receivers, PrometheusTelemetry(), cfg)
    worker = WebhookWorker(store, sender, StreamEvents(InMemoryRuntime(), 1.0), cfg, owner="w")
    now = time.time()
    for host, count in slow.items():
        await store.add_deliveries(_deliveries(host, count, at=now - 10))
    await store.add_deliveries(_deliveries("healthy.example.test", 1, at=now - 5))
    worker.start()
    try:
        await eventually(lambda: "healthy.example.test" in receivers.answered, within=10)
        assert not set(receivers.answered) & set(slow)  # all of them still held
    finally:
        receivers.release.set()
        await worker.stop()
    return receivers


async def test_forty_slow_receivers_do_not_delay_a_healthy_one(tmp_path: Path) -> None:
    slow = {f"slow-{n}.example.test": 1 for n in range(40)}
    cfg = WebhookConfig(policy=POLICY, secrets=(b"s" * 32,), poll_seconds=0.05)
    await _healthy_answered_while_slow_hold(tmp_path, slow, cfg)


async def test_one_receiver_gets_at_most_its_share_of_the_sends(tmp_path: Path) -> None:
    cfg = WebhookConfig(
        policy=POLICY,
        secrets=(b"s" * 32,),
        poll_seconds=0.05,
        concurrency=6,
        receiver_concurrency=2,
    )
    receivers = await _healthy_answered_while_slow_hold(
        tmp_path, {"slow-a.example.test": 30, "slow-b.example.test": 30}, cfg
    )
    assert receivers.most["slow-a.example.test"] == receivers.most["slow-b.example.test"] == 2


async def test_deliveries_waiting_their_turn_are_let_go_when_the_worker_stops(
    tmp_path: Path,
) -> None:
    cfg = WebhookConfig(
        policy=POLICY, secrets=(b"s" * 32,), poll_seconds=0.05, receiver_concurrency=2
    )
    store = SqliteWebhookStore(tmp_path / "state.sqlite3")
    receivers = Receivers({"slow.example.test"})
    sender = DeliverySender(store, receivers, PrometheusTelemetry(), cfg)
    worker = WebhookWorker(store, sender, StreamEvents(InMemoryRuntime(), 1.0), cfg, owner="w")
    now = time.time()
    await store.add_deliveries(_deliveries("slow.example.test", 10, at=now - 10))
    worker.start()
    await eventually(lambda: receivers.in_flight.get("slow.example.test") == 2)
    await worker.stop()
    # Two were in flight, eight waited behind them: all ten are free for another process.
    taken = await store.claim_deliveries("other", time.time(), time.time() + 60, 100)
    assert len(taken) == 10
    assert receivers.most["slow.example.test"] == 2
