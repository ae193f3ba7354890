"""The simulated core's event streams: a job's history, then (where the release follows)
its live events, as the port hands them to the gateway and as a core sends them over the
wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mn_api.adapters.memory.model import _Job, _loads, _type_of
from mn_api.domain import events as ev
from mn_api.domain.documents import JsonDocument
from mn_api.domain.events import EventRecord, Heartbeat


class Streams:
    """The streaming half of InMemoryRuntime (its state is the runtime's own)."""

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        if not self._store_up:
            return  # a core without its state store streams no history, for any job
        job = self._job(job_id)
        position = after + 1
        while True:
            position = max(position, job.base)
            while position < job.end:
                yield EventRecord(position, JsonDocument(job.events[position - job.base], _loads))
                position += 1
                position = max(position, job.base)
            if not follow or job.status.is_terminal:
                return
            if not await self._changed(job, heartbeat_seconds):
                yield Heartbeat()

    async def _changed(self, job: _Job, within: float | None) -> bool:
        """Wait for the job's next event; False when `within` seconds passed quietly."""
        if job.changed is None:
            job.changed = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await job.changed.wait()
        except TimeoutError:
            return False
        return True

    async def core_stream(
        self, job_id: str, *, follow: bool, heartbeat_ms: int = 0, limit: int = 0
    ) -> AsyncIterator[bytes]:
        """The event stream exactly as this release's core sends it over the wire.

        Releases that do not follow send the history and end, for an unknown job too (an
        empty stream). Following releases send the history (its last `limit` events where
        the release has the field), end at once when it holds the job's end, and otherwise
        pass live events on until the end, with a `stream_heartbeat` after each quiet
        interval; an unknown job gets heartbeats forever.
        """
        release = self.release
        if not release.follows_streams:
            follow, heartbeat_ms = False, 0
        if not release.stream_tail_limit:
            limit = 0
        interval = heartbeat_ms / 1000 if heartbeat_ms > 0 else None
        job = self._jobs.get(job_id) if self._store_up else None
        if job is None:
            if not follow:
                return
            while True:
                if interval is None:
                    await asyncio.Event().wait()  # silent until the caller goes
                await asyncio.sleep(interval or 0)
                yield self._heartbeat(job_id)
        position = max(job.base, job.end - limit) if limit > 0 else job.base
        ended = job.status.is_terminal
        history_end = job.end
        while position < history_end:
            yield job.events[position - job.base]
            position = max(position + 1, job.base)
        if not follow or ended:
            return
        if job.duplicate_boundary and position > job.base:
            yield job.events[position - 1 - job.base]
        while True:
            while position < job.end:
                raw = job.events[position - job.base]
                yield raw
                position = max(position + 1, job.base)
                if _type_of(raw) in ev.TERMINAL_EVENT_STATUS:
                    return
            if job.status.is_terminal and job_id not in self._active:
                return
            if not await self._changed(job, interval):
                yield self._heartbeat(job_id)
