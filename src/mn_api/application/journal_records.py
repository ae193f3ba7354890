"""A job's journal (its raw events by position, their indexes and folds), the pages read
from it, and the counts the gauges read. Kept and fed by `HistoryJournal` (journal.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    DomainError,
)
from mn_api.domain.events import DEAD_LETTER, TERMINAL_EVENT_STATUS, EventRecord
from mn_api.domain.graph import EventFold
from mn_api.domain.progress import ProgressFold

# What one event costs beyond its bytes: its slot in the list and the bytes object's header.
RECORD_OVERHEAD = 64


async def job_status(runtime: RuntimePort, job_id: str) -> str:
    """The job's status as the runtime's details give it ("" when they do not say)."""
    details = (await runtime.get_job(job_id)).value
    job = details.get("job") if isinstance(details, Mapping) else None
    status = job.get("status") if isinstance(job, Mapping) else None
    return status if isinstance(status, str) else ""


class JournalStats:
    """Counts for operators; the Prometheus adapter reads them when it is scraped."""

    __slots__ = ("evictions", "hits", "misses", "oversized")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.oversized = 0


class _Diverged(Exception):
    """The core's history no longer starts as the journal says."""


class _Journal:
    """One job's history as far as it was read: raw events from position `base` on."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        # How the runtime's documents are parsed: taken from the first event it sent.
        self.parse: Callable[[bytes], Any] | None = None
        self.base = 0  # the position of raws[0]
        self.final = False
        self.size = 0
        self.watchers = 0
        self.idle_since: float | None = None
        # Too big to keep whole: pages stream from the core, watchers get a window.
        self.oversized = False
        self.follower: asyncio.Task[None] | None = None
        self.catching_up: asyncio.Future[None] | None = None
        self.failure: DomainError | None = None
        # Since when (the journal's clock) the follower has failed to read the runtime, and
        # why, and the wall-clock time of it; None while it reads.
        self.trouble_since: float | None = None
        self.trouble: DomainError | None = None
        self.trouble_at = 0.0
        self.recovered_at = 0.0
        self.raws: list[bytes] = []
        self.by_type: dict[str, list[int]] = {}
        self.dead_letters: list[int] = []
        self.fold = EventFold()
        self.progress = ProgressFold()
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()
        # The newest events, parsed, as of a length of `raws` (the list itself is replaced
        # when the journal starts over): every GET of the job's details reads them.
        self._newest: tuple[list[bytes] | None, int, list[Any]] = (None, -1, [])

    @property
    def end(self) -> int:
        return self.base + len(self.raws)

    @property
    def whole(self) -> bool:
        return self.base == 0 and not self.oversized

    def record(self, position: int) -> EventRecord:
        assert self.parse is not None  # set with the first event
        return EventRecord(position, JsonDocument(self.raws[position - self.base], self.parse))

    def newest(self, count: int) -> list[Any]:
        """The values of the newest `count` events held, newest first, in a list of the
        caller's own; parsed once for each length the journal reaches, not once per reader
        (the values are shared: callers must not change them)."""
        raws, end, values = self._newest
        if raws is not self.raws or end != self.end or len(values) != min(count, len(raws)):
            first = max(self.base, self.end - count)
            values = [self.record(p).value for p in range(self.end - 1, first - 1, -1)]
            self._newest = (self.raws, self.end, values)
        return list(values)

    def append(self, document: JsonDocument) -> None:
        """Add the next event; its parsed value feeds the indexes and is not kept."""
        position = self.end
        raw = document.raw
        value = document.value
        if self.parse is None:
            self.parse = document.parser
        self.raws.append(raw)
        self.size += len(raw) + RECORD_OVERHEAD
        kind = value.get("type") if isinstance(value, dict) else None
        kind = kind if isinstance(kind, str) else ""
        self.by_type.setdefault(kind, []).append(position)
        if kind == DEAD_LETTER:
            self.dead_letters.append(position)
        if isinstance(value, dict):
            self.fold.add(value)
            self.progress.add(value)
        if kind in TERMINAL_EVENT_STATUS:
            self.final = True
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def trim(self, keep_bytes: int) -> None:
        """Drop the oldest events until the journal holds at most `keep_bytes`: a window."""
        drop = 0
        while self.size > keep_bytes and drop < len(self.raws) - 1:
            self.size -= len(self.raws[drop]) + RECORD_OVERHEAD
            drop += 1
        if drop:
            del self.raws[:drop]
            self.base += drop
            # The indexes and the fold speak of the whole history: no longer true.
            self.oversized = True

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


def _cleared(journal: _Journal) -> None:
    journal.catching_up = None


class JournalPage:
    """One page of a journal, fixed when it is made: events appended later, or a window that
    moves, never change a page already being sent.

    `offset` is the first event's position among those the type filter keeps (with `tail`,
    the first of the last `tail`), `next_offset` the next page's, or None on the last page.
    """

    def __init__(
        self,
        journal: _Journal,
        *,
        offset: int = 0,
        limit: int | None = None,
        kind: str | None = None,
        tail: int | None = None,
    ) -> None:
        positions: range | list[int] = (
            range(journal.base, journal.end) if kind is None else journal.by_type.get(kind, [])
        )
        if tail is not None:
            offset = max(len(positions) - tail, 0)
            limit = None
        stop = len(positions) if limit is None else min(offset + limit, len(positions))
        self.offset = offset
        self.next_offset: int | None = stop if stop < len(positions) and tail is None else None
        self._parse = journal.parse
        if kind is None:
            # A slice of the journal's own list: no copy of any event.
            first = journal.base + offset
            self._positions: range | list[int] = range(first, journal.base + stop)
            self.raws = journal.raws[offset:stop]
        else:
            self._positions = positions[offset:stop]
            self.raws = [journal.raws[p - journal.base] for p in self._positions]

    def __len__(self) -> int:
        return len(self.raws)

    def records(self) -> list[EventRecord]:
        assert self._parse is not None or not self.raws
        return [
            EventRecord(position, JsonDocument(raw, self._parse))  # type: ignore[arg-type]
            for position, raw in zip(self._positions, self.raws, strict=True)
        ]

    async def __aiter__(self) -> AsyncIterator[JsonDocument]:
        for record in self.records():
            yield record.document
