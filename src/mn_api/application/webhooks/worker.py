"""WebhookWorker: follows subscribed jobs' events and delivers them, in every replica.

Two loops share the work with the other replicas through the store's leases:
- watching: claim a job nobody follows, read its events from where the last reader
  stopped (the same feed the SSE route serves) and turn each subscribed event into a
  delivery whose id depends only on the subscription and the event, so reading an event
  twice never makes a second delivery;
- dispatching: claim pending deliveries that are due and send each once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import aclosing, suppress

from mn_api.application.ports import WebhookStore
from mn_api.application.use_cases.stream_events import StreamEnd, StreamEvents
from mn_api.application.webhooks.config import WebhookConfig
from mn_api.application.webhooks.sender import DeliverySender
from mn_api.domain.errors import DomainError, JobNotFoundError
from mn_api.domain.events import EventRecord, iso_timestamp, status_after
from mn_api.domain.webhooks.records import (
    Delivery,
    Subscription,
    Watch,
    delivery_body,
    delivery_id,
)

log = logging.getLogger("mn_api.webhooks")

MAX_WATCHES = 256  # jobs followed at once per process
STOP_SECONDS = 10.0  # how long stop() waits for the loops to let go


class WebhookWorker:
    def __init__(
        self,
        store: WebhookStore,
        sender: DeliverySender,
        events: StreamEvents,
        config: WebhookConfig,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._events = events
        self._config = config
        self._clock = clock
        self.owner = owner
        self._watch_wake = asyncio.Event()
        self._dispatch_wake = asyncio.Event()
        self._following: dict[str, asyncio.Task[None]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        # Deliveries in flight from this process, by receiver, and those claimed to follow
        # them (each with the end of its lease).
        self._busy: dict[str, int] = {}
        self._queued: dict[str, deque[tuple[Delivery, float]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_purge = 0.0

    def wake(self) -> None:
        """Look for new watches now rather than at the next poll."""
        self._watch_wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch_loop(), name="webhook-watch"),
            asyncio.create_task(self._dispatch_loop(), name="webhook-dispatch"),
        ]

    async def stop(self) -> None:
        """Stop both loops and hand every held watch back, so another process resumes it."""
        tasks = [*self._tasks, *self._following.values(), *self._sending]
        for task in tasks:
            task.cancel()
        queued = [delivery for queue in self._queued.values() for delivery, _ in queue]
        self._queued.clear()
        for delivery in queued:  # claimable by another process at once
            with suppress(DomainError):
                await self._store.release_delivery(delivery.id, self.owner)
        if tasks:
            done, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("webhook task %s ended with %r", task.get_name(), task.exception())
            for task in stuck:  # their leases run out and another process takes over
                log.error("webhook task %s did not stop", task.get_name())
        self._tasks = []

    # Watching ---------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        while True:
            room = MAX_WATCHES - len(self._following)
            if room > 0:
                now = self._clock()
                try:
                    watches = await self._store.claim_watches(
                        self.owner, now, now + self._config.lease_seconds, room
                    )
                except DomainError as err:
                    log.warning("webhook watches cannot be claimed: %s", err.detail)
                    watches = []
                for watch in watches:
                    if watch.job_id in self._following:
                        continue  # already followed here; that reader renews the lease
                    task = asyncio.create_task(self._follow(watch), name=f"watch {watch.job_id}")
                    self._following[watch.job_id] = task
                    task.add_done_callback(
                        lambda _t, job=watch.job_id: self._following.pop(job, None)
                    )
            await _wait(self._watch_wake, self._config.poll_seconds)

    async def _follow(self, watch: Watch) -> None:
        retry_at: float | None = None
        try:
            retry_at = await self._read(watch)
        except asyncio.CancelledError:
            retry_at = self._clock()
            raise
        except JobNotFoundError:
            log.info("webhook watch of job %s ends: the job is gone", watch.job_id)
        except DomainError as err:
            retry_at = self._clock() + self._config.poll_seconds * 5
            log.warning("webhook watch of job %s paused: %s", watch.job_id, err.detail)
        except Exception:
            retry_at = self._clock() + self._config.lease_seconds
            log.exception("webhook watch of job %s failed", watch.job_id)
        finally:
            with suppress(DomainError):
                await asyncio.shield(self._store.end_watch(watch.job_id, self.owner, retry_at))

    async def _read(self, watch: Watch) -> float | None:
        """Follow the job to its end (None), or until the lease is lost or the feed stops
        early (when to read on)."""
        subscriptions = await self._store.subscriptions(watch.job_id)
        feed = await self._events(watch.job_id, after=watch.cursor, follow=True)
        if feed is None or not subscriptions:
            return None
        renew_every = self._config.lease_seconds / 3
        renewed = self._clock()
        cursor, status = watch.cursor, watch.status
        async with aclosing(feed):
            async for item in feed:
                save = False
                if isinstance(item, EventRecord):
                    cursor = item.index
                    status = status_after(item.type, status)
                    made = _deliveries(subscriptions, item, status, self._clock())
                    if made:
                        await self._store.add_deliveries(made)
                        self._dispatch_wake.set()
                        save = True
                elif isinstance(item, StreamEnd):
                    return None
                now = self._clock()
                if save or now - renewed >= renew_every:
                    lease_until = now + self._config.lease_seconds
                    held = await self._store.advance_watch(
                        Watch(watch.job_id, cursor, status), self.owner, lease_until
                    )
                    if not held:
                        log.warning("webhook watch of job %s was taken over", watch.job_id)
                        return now
                    renewed = now
        # The feed stopped without the job ending (the runtime closed it): read on later.
        return self._clock() + self._config.poll_seconds * 5

    # Dispatching ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        """Keep up to `concurrency` deliveries in flight, and at most `receiver_concurrency`
        to any one receiver: a slow receiver holds only its own share.
        Claimed while its receiver has its share out, a delivery waits here for its turn
        (up to `receiver_queue` of them a receiver); past that it is put back, due a poll
        later, so the claims behind it reach the other receivers."""
        while True:
            room = self._config.concurrency - len(self._sending)
            batch: list[Delivery] = []
            if room > 0:
                now = self._clock()
                lease_until = now + self._config.lease_seconds
                try:
                    batch = await self._store.claim_deliveries(self.owner, now, lease_until, room)
                    await self._purge(now)
                except DomainError as err:
                    log.warning("webhook deliveries cannot be claimed: %s", err.detail)
                over = [d for d in batch if not self._start_or_queue(d, lease_until)]
                if over:
                    await self._postpone(over, self._clock() + self._config.poll_seconds)
            if len(batch) < room or room <= 0:
                await _wait(self._dispatch_wake, self._config.poll_seconds)

    def _start_or_queue(self, delivery: Delivery, lease_until: float) -> bool:
        """Send the delivery now, or queue it behind its receiver's sends; False when
        that queue is full too."""
        receiver = delivery.receiver
        if self._busy.get(receiver, 0) < self._config.receiver_concurrency:
            self._launch(delivery, receiver)
            return True
        queue = self._queued.setdefault(receiver, deque())
        if len(queue) >= self._config.receiver_queue:
            return False
        queue.append((delivery, lease_until))
        return True

    def _launch(self, delivery: Delivery, receiver: str) -> None:
        self._busy[receiver] = self._busy.get(receiver, 0) + 1
        task = asyncio.create_task(self._send(delivery), name=f"webhook {delivery.id}")
        self._sending.add(task)
        task.add_done_callback(lambda done: self._sent(done, receiver))

    async def _postpone(self, deliveries: list[Delivery], until: float) -> None:
        for delivery in deliveries:
            try:
                await self._store.save_delivery(delivery.postponed(until), self.owner)
            except DomainError as err:  # its lease runs out and it is claimed again
                log.warning("webhook %s could not be put back: %s", delivery.id, err.detail)

    def _sent(self, task: asyncio.Task[None], receiver: str) -> None:
        """A send ended: the receiver's next queued delivery takes its place, if enough of
        its lease is left for a whole attempt (else it is let go, to be claimed anew)."""
        self._sending.discard(task)
        left = self._busy.get(receiver, 1) - 1
        if left > 0:
            self._busy[receiver] = left
        else:
            self._busy.pop(receiver, None)
        queue = self._queued.get(receiver)
        while queue:
            delivery, lease_until = queue.popleft()
            if lease_until - self._clock() > self._config.lease_seconds / 2:
                self._launch(delivery, receiver)
                break
            release = self._store.release_delivery(delivery.id, self.owner)
            letting_go = asyncio.create_task(release, name=f"webhook {delivery.id} let go")
            self._sending.add(letting_go)
            letting_go.add_done_callback(self._sending.discard)
        if not queue:
            self._queued.pop(receiver, None)
        self._dispatch_wake.set()  # room for more

    async def _send(self, delivery: Delivery) -> None:
        try:
            await self._sender.attempt(delivery, self.owner)
        except DomainError as err:
            log.warning("webhook %s could not be recorded: %s", delivery.id, err.detail)
        except Exception:
            # Left to its lease: another try comes when it runs out.
            log.exception("webhook %s could not be sent", delivery.id)

    async def _purge(self, now: float) -> None:
        if now - self._last_purge >= min(600.0, self._config.retention_seconds / 10):
            self._last_purge = now
            await self._store.purge(now - self._config.retention_seconds)


def _deliveries(
    subscriptions: list[Subscription], event: EventRecord, status: str | None, now: float
) -> list[Delivery]:
    wanted = [s for s in subscriptions if s.wants(event.type)]
    if not wanted:
        return []
    stamp = event.value.get("timestamp")
    occurred_at = stamp if isinstance(stamp, str) else iso_timestamp(now)
    made = []
    for sub in wanted:
        ident = delivery_id(sub.id, event.index)
        made.append(
            Delivery(
                id=ident,
                job_id=sub.job_id,
                subscription_id=sub.id,
                url=sub.url,
                event_type=event.type,
                event_index=event.index,
                body=delivery_body(
                    ident, sub.job_id, status, event.type, event.document.raw, occurred_at
                ),
                created_at=now,
                next_attempt_at=now,
            )
        )
    return made


async def _wait(event: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout rather than wait_for: on Python 3.11, wait_for drops a cancellation
    # that arrives as the event is set, and stop() would wait on this loop for ever.
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()
