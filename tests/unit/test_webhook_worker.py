"""The webhook worker's own life: it starts, and it stops whatever moment stop() comes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.adapters.webhooks.notifier import HttpxNotifier
from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore
from mn_api.application.use_cases.stream_events import StreamEvents
from mn_api.application.webhooks import DeliverySender, WebhookConfig
from mn_api.application.webhooks.worker import WebhookWorker
from mn_api.domain.webhooks import UrlPolicy
from tests.support import map_resolver


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
