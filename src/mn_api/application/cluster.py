"""ClusterWatch: the runtime as the gateway trusts it, with what it has seen of the cluster.

Every use case talks to the runtime through this port. It passes each call on, and:

- remembers the cluster's members from every summary it sees (and so the nodes that left:
  `Membership`), and the node that coordinates each job from the events read
  (`job_scheduled`, `job_recovery_started`), and the jobs the core refused to pause or
  resume because no coordinator runs them;
- tells a core whose state store (its Redis) is down from one that answers truly. Such a
  core still answers, but GetJob `{}` for every job, an empty job list, a summary without
  nodes, an empty history, and refuses submissions with the store's connection error.
  Those answers become `StateStoreDownError` (503 with Retry-After): never a 404, a 422 or
  an empty 200 that a client would take for the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import Any

from mn_api.application.ports import JobAck, ReplayAck, RuntimePort
from mn_api.domain.cluster import Membership, coordinator_in
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    CoordinatorGoneError,
    JobNotFoundError,
    ManifestInvalidError,
    StateStoreDownError,
)
from mn_api.domain.events import EventRecord, Heartbeat, iso_timestamp
from mn_api.domain.status import LIVE_STATUSES

log = logging.getLogger("mn_api.cluster")

# How old a summary may be for what the gateway says of membership and orphans.
SUMMARY_MAX_AGE_SECONDS = 2.0
# How old a summary may be to tell whether "nothing found" is the truth.
FRESH_SECONDS = 0.25
# How many jobs' coordinators and refusals are remembered (the least recent go first).
JOBS_REMEMBERED = 10_000
# What a core says when it cannot write a job to its state store.
_STORE_REFUSALS = ("failed to persist", "redix.connectionerror", "redix.error")
# Cheap looks at an event's bytes before it is read for the node it names.
_COORDINATOR_MARKERS = (b"job_scheduled", b"job_recovery_started")


class ClusterWatch(RuntimePort):
    """Passes every call to `runtime`; see the module's description for what it adds."""

    def __init__(
        self,
        runtime: RuntimePort,
        *,
        clock: Callable[[], float] = time.time,
        summary_max_age_seconds: float = SUMMARY_MAX_AGE_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.membership = Membership()
        self._clock = clock
        self._max_age = summary_max_age_seconds
        self._summary: Mapping[str, Any] | None = None
        self._summary_at = float("-inf")
        self._reading: asyncio.Future[Mapping[str, Any]] | None = None
        self._coordinators: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()
        # Since when the core's state store is known to be down (None: it answers).
        self.store_down_since: float | None = None

    @property
    def message_limit_bytes(self) -> int | None:  # type: ignore[override]
        return self.runtime.message_limit_bytes

    async def start(self) -> None:
        await self.runtime.start()

    async def close(self) -> None:
        await self.runtime.close()

    # -- what it has seen ------------------------------------------------------------------

    def coordinator(self, job_id: str) -> str | None:
        """The node the job's newest `job_scheduled`/`job_recovery_started` named, as read
        ("" for a recovery that named none)."""
        known = self._coordinators.get(job_id)
        return known[1] if known is not None else None

    def remember_coordinator(self, job_id: str, node: str, position: int = -1) -> None:
        """What the event at `position` of the job's history says (-1: not known where);
        an older event read again later never overrides a newer one."""
        known = self._coordinators.get(job_id)
        if known is not None and position >= 0 and known[0] > position:
            return
        _remember(self._coordinators, job_id, (max(position, known[0] if known else -1), node))

    def forget_all_but(self, live: Iterable[str]) -> None:
        """Drop what was seen of every job but these (the runtime cleared the others):
        coordinators matter only while a job runs."""
        keep = set(live)
        for kept in (self._coordinators, self._refused):
            for job_id in [job_id for job_id in kept if job_id not in keep]:
                del kept[job_id]

    def refused_at(self, job_id: str) -> float | None:
        """When the core last refused a control call on the job for want of a coordinator."""
        return self._refused.get(job_id)

    async def summary(self, max_age_seconds: float | None = None) -> Mapping[str, Any]:
        """The core's summary, read at most `max_age_seconds` ago (one read at a time:
        callers who come meanwhile share it). Raises as `system_summary` does."""
        max_age = self._max_age if max_age_seconds is None else max_age_seconds
        if self._summary is not None and time.monotonic() - self._summary_at <= max_age:
            return self._summary
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_summary())
            self._reading.add_done_callback(self._read_done)
        return await asyncio.shield(self._reading)

    def _read_done(self, reading: asyncio.Future[Mapping[str, Any]]) -> None:
        self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved: each waiter raises it on its own

    async def _read_summary(self) -> Mapping[str, Any]:
        value = (await self.system_summary()).value
        return value if isinstance(value, Mapping) else {}

    def _observe(self, summary: Any) -> bool:
        """Take in a summary's nodes; answers False for a summary that is empty or lists no
        node (a core always lists itself, unless it cannot reach its state store)."""
        if not isinstance(summary, Mapping) or not summary:
            return False
        nodes = summary.get("nodes")
        if not isinstance(nodes, list):
            return True  # a summary that says nothing of nodes says nothing of membership
        listed = [n for n in nodes if isinstance(n, Mapping)]
        if not listed:
            return False
        left, returned = self.membership.observe(listed, self._clock())
        for name in left:
            log.warning("core node %s left the cluster", name)
        for name in returned:
            log.warning("core node %s is a member of the cluster again", name)
        self._summary, self._summary_at = summary, time.monotonic()
        self._store_answers()
        return True

    # -- the state store --------------------------------------------------------------------

    def _store_down(self, seen: str) -> StateStoreDownError:
        if self.store_down_since is None:
            self.store_down_since = self._clock()
            log.warning("the core cannot reach its state store (%s)", seen)
        since = iso_timestamp(self.store_down_since)
        return StateStoreDownError(
            f"the runtime cannot reach its state store (since {since}): jobs can be neither "
            "read nor submitted until it is back"
        )

    def _store_answers(self) -> None:
        if self.store_down_since is not None:
            log.warning("the core reaches its state store again")
            self.store_down_since = None

    async def _store_is_down(self) -> bool:
        """Whether an answer that says "nothing" comes from a core without its state store:
        the summary of such a core lists no node, not even itself. The summary is read
        anew (callers who come at once share the read)."""
        try:
            await self.summary(max_age_seconds=FRESH_SECONDS)
        except StateStoreDownError:
            return True
        return False

    # -- the port ----------------------------------------------------------------------------

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        try:
            return await self.runtime.submit_job(manifest_json, payloads)
        except ManifestInvalidError as refused:
            text = " ".join(refused.errors).lower()
            if any(marker in text for marker in _STORE_REFUSALS):
                raise self._store_down("a submission was refused for it") from refused
            raise

    async def get_job(self, job_id: str) -> JsonDocument:
        try:
            document = await self.runtime.get_job(job_id)
        except JobNotFoundError as missing:
            if await self._store_is_down():
                raise self._store_down("a job read as unknown") from missing
            raise
        if self.store_down_since is not None:
            self._store_answers()
        return document

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        listed = await self.runtime.list_jobs(limit, include_terminal)
        if len(listed.raw) < 64:  # only an empty list is this short: it may not be true
            value = listed.value
            data = value.get("data", value.get("jobs")) if isinstance(value, Mapping) else None
            if data == [] and await self._store_is_down():
                raise self._store_down("the job list read as empty")
        return listed

    async def cancel_job(self, job_id: str) -> JobAck:
        ack = await self._control(self.runtime.cancel_job, job_id)
        self._refused.pop(job_id, None)
        return ack

    async def pause_job(self, job_id: str) -> JobAck:
        return await self._control(self.runtime.pause_job, job_id)

    async def resume_job(self, job_id: str) -> JobAck:
        return await self._control(self.runtime.resume_job, job_id)

    async def _control(self, call: Callable[[str], Any], job_id: str) -> JobAck:
        try:
            ack: JobAck = await call(job_id)
            return ack
        except CoordinatorGoneError as refused:
            if refused.status in LIVE_STATUSES:
                _remember(self._refused, job_id, self._clock())
            raise
        except JobNotFoundError as missing:
            if await self._store_is_down():
                raise self._store_down("a job read as unknown") from missing
            raise

    async def clear_jobs(self) -> int:
        return await self.runtime.clear_jobs()

    async def cancel_all_jobs(self) -> JsonDocument:
        return await self.runtime.cancel_all_jobs()

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        return await self.runtime.replay_dead_letter(job_id, event_index)

    async def remove_node(self, node_name: str) -> str:
        answer = await self.runtime.remove_node(node_name)
        self.membership.retire(node_name)  # taken out on purpose: not a lost node
        return answer

    async def system_summary(self) -> JsonDocument:
        document = await self.runtime.system_summary()
        if not self._observe(document.value):
            raise self._store_down("its summary listed no node")
        return document

    async def ping(self, deadline_seconds: float) -> None:
        await self.runtime.ping(deadline_seconds)
        await asyncio.wait_for(self.summary(max_age_seconds=1.0), deadline_seconds)

    async def call_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> dict[str, Any]:
        return await self.runtime.call_service(method, request, kind=kind)

    def stream_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> AsyncIterator[dict[str, Any]]:
        return self.runtime.stream_service(method, request, kind=kind)

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        stream = self.runtime.stream_events(
            job_id, follow=follow, after=after, heartbeat_seconds=heartbeat_seconds
        )
        events = 0
        try:
            async with aclosing(stream):
                async for item in stream:
                    if type(item) is EventRecord:
                        events += 1
                        raw = item.document.raw
                        if _COORDINATOR_MARKERS[0] in raw or _COORDINATOR_MARKERS[1] in raw:
                            node = coordinator_in(item.value)
                            if node is not None:
                                self.remember_coordinator(job_id, node, item.index)
                    yield item
        except JobNotFoundError as missing:
            if await self._store_is_down():
                raise self._store_down("a job's history read as unknown") from missing
            raise
        if events == 0 and after >= 0 and await self._store_is_down():
            # A reader that resumes after a known position expects at least that event
            # again; a core without its state store sends none.
            raise self._store_down("a job's history read as empty")


def _remember(kept: OrderedDict[str, Any], key: str, value: Any) -> None:
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > JOBS_REMEMBERED:
        kept.popitem(last=False)
