"""A job's journal (its raw events by position, their indexes and folds), the pages read
from it, and the counts the gauges read. Kept and fed by `HistoryJournal` (journal.py)."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from mn_api.application.ports import RuntimePort
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    DomainError,
)
from mn_api.domain.events import DEAD_LETTER, JOB_FAILED, TERMINAL_EVENT_STATUS, EventRecord
from mn_api.domain.graph import EventFold
from mn_api.domain.progress import ProgressFold

# What keeping a history takes besides its events' own bytes, as tracemalloc measures it
# (`python -m bench.history_journal --sizes` measures it again beside the account):
# - each event: its slot in the list of events, the bytes object's header and the
#   allocator's rounding (50 measured), and its position in the type index (8, an array);
RECORD_OVERHEAD = 64
# - each journal, before any event: the object, its lock and events, empty folds and indexes;
JOURNAL_OVERHEAD = 4_200
# - each agent the folds know (besides the characters of its name), each edge of the graph
#   fold (besides those of its three names), each event type of the index (besides its
#   name), and each of the newest events the progress fold keeps (20 at most);
AGENT_BYTES = 280
EDGE_BYTES = 400
TYPE_BYTES = 200
RECENT_BYTES = 420
# - a parsed event (the newest ones kept for the job's details, a failure the progress fold
#   keeps): per event, and per byte of its JSON.
PARSED_OVERHEAD = 100
PARSED_PER_BYTE = 4


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


class Meter:
    """The bytes that the journals of one `HistoryJournal` take together, as each accounts,
    and what is done when a journal grows them beyond `limit` outside a read of the core
    (the newest events kept parsed): `over(journal)` lets others go."""

    __slots__ = ("held", "limit", "over")

    def __init__(
        self, limit: int | None = None, over: Callable[[_Journal], None] | None = None
    ) -> None:
        self.held = 0
        self.limit = limit
        self.over = over


class _Diverged(Exception):
    """The core's history no longer starts as the journal says."""


def _parsed_bytes(raw: bytes) -> int:
    return PARSED_OVERHEAD + PARSED_PER_BYTE * len(raw)


class _Journal:
    """One job's history as far as it was read: raw events from position `base` on.

    `size` is what it takes, accounted as it changes: its events and their overhead, the
    type index and the graph fold (`index_bytes`), the progress fold (`progress_bytes`), and
    the newest events kept parsed; the meter it shares with the other journals follows.
    A journal let go (`dropped`) accounts for nothing: it holds no events any more.
    """

    def __init__(self, job_id: str, meter: Meter | None = None) -> None:
        self.job_id = job_id
        self.meter = meter if meter is not None else Meter()
        # How the runtime's documents are parsed: taken from the first event it sent.
        self.parse: Callable[[bytes], Any] | None = None
        self.base = 0  # the position of raws[0]
        self.final = False
        # The job is known to have ended (its status said so), its end event read or not.
        self.ended = False
        # Let go to keep within the memory budget: its watchers read from the runtime.
        self.dropped = False
        self.size = 0
        self.record_bytes = self.index_bytes = self.progress_bytes = self.newest_bytes = 0
        self.watchers = 0
        self.idle_since: float | None = None
        # Too big to keep whole: pages stream from the core, watchers get a window.
        self.oversized = False
        self.follower: asyncio.Task[None] | None = None
        self.streaming = False  # a following stream from the core is open
        self.catching_up: asyncio.Future[None] | None = None
        # Making sure of the end of a job that has ended without its end event.
        self.settling: asyncio.Future[None] | None = None
        self.failure: DomainError | None = None
        # Since when (the journal's clock) the follower has failed to read the runtime, and
        # why, and the wall-clock time of it; None while it reads.
        self.trouble_since: float | None = None
        self.trouble: DomainError | None = None
        self.trouble_at = 0.0
        self.recovered_at = 0.0
        self.raws: list[bytes] = []
        self.by_type: dict[str, array[int]] = {}
        self.dead_letters: array[int] = array("q")
        self.fold = EventFold()
        self.progress = ProgressFold()
        self.progress_end = 0  # the position of the first event the progress fold has not had
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()
        # The newest events, parsed, as of a length of `raws` (the list itself is replaced
        # when the journal starts over): every GET of the job's details reads them.
        self._newest: tuple[list[bytes] | None, int, list[Any]] = (None, -1, [])
        self._account()

    @property
    def end(self) -> int:
        return self.base + len(self.raws)

    @property
    def whole(self) -> bool:
        return self.base == 0 and not self.oversized and not self.dropped

    @property
    def open(self) -> bool:
        """Still read from the core: not final, and kept."""
        return not self.final and not self.dropped

    def record(self, position: int) -> EventRecord:
        assert self.parse is not None  # set with the first event
        return EventRecord(position, JsonDocument(self.raws[position - self.base], self.parse))

    def records(self, positions: Sequence[int]) -> Iterator[EventRecord]:
        """The events at these positions, as the journal holds them now: one that is let go
        or starts over meanwhile does not change them."""
        raws, base, parse = self.raws, self.base, self.parse
        assert parse is not None or not positions
        return (EventRecord(p, JsonDocument(raws[p - base], parse)) for p in positions)  # type: ignore[arg-type]

    def newest(self, count: int) -> list[Any]:
        """The values of the newest `count` events held, newest first, in a list of the
        caller's own; parsed once for each length the journal reaches, not once per reader
        (the values are shared: callers must not change them)."""
        raws, end, values = self._newest
        if raws is not self.raws or end != self.end or len(values) != min(count, len(raws)):
            first = max(self.base, self.end - count)
            values = [self.record(p).value for p in range(self.end - 1, first - 1, -1)]
            self._newest = (self.raws, self.end, values)
            self.newest_bytes = sum(map(_parsed_bytes, self.raws[first - self.base :]))
            self._account()
            meter = self.meter
            if meter.over is not None and meter.limit is not None and meter.held > meter.limit:
                meter.over(self)
        return list(values)

    def append(self, document: JsonDocument) -> None:
        """Add the next event; its parsed value feeds the indexes and is not kept."""
        position = self.end
        raw = document.raw
        value = document.value
        if self.parse is None:
            self.parse = document.parser
        self.raws.append(raw)
        self.record_bytes += len(raw) + RECORD_OVERHEAD
        kind = value.get("type") if isinstance(value, dict) else None
        kind = kind if isinstance(kind, str) else ""
        if not self.oversized:  # a window keeps no indexes: they speak of the whole history
            positions = self.by_type.get(kind)
            if positions is None:
                positions = self.by_type[kind] = array("q")
                self.index_bytes += TYPE_BYTES + len(kind)
            positions.append(position)
            if kind == DEAD_LETTER:
                self.dead_letters.append(position)
                self.index_bytes += 8
        if isinstance(value, dict):
            self._fold(value, kind, raw)
        self.progress_end = position + 1
        if kind in TERMINAL_EVENT_STATUS:
            self.final = True
        self._account()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def _fold(self, value: dict[str, Any], kind: str, raw: bytes) -> None:
        """Feed the folds, and account for what they grew by."""
        progress = self.progress
        agents, recent = len(progress.agents), len(progress.recent)
        progress.add(value)
        grown = len(progress.agents) - agents
        if grown:
            for name in islice(reversed(progress.agents), grown):
                self.progress_bytes += AGENT_BYTES + len(name)
        if len(progress.recent) != recent:
            self.progress_bytes += RECENT_BYTES
        if kind == JOB_FAILED:
            self.progress_bytes += _parsed_bytes(raw)  # the fold keeps the failure
        if self.oversized:
            return
        edges = self.fold.edges
        known = len(edges)
        self.fold.add(value)
        if len(edges) != known:
            source, target, message_type = next(reversed(edges))
            self.index_bytes += EDGE_BYTES + len(source) + len(target) + len(message_type)

    def trim(self, keep_bytes: int) -> None:
        """Keep a window of the newest events: the oldest out until the journal takes at
        most `keep_bytes`. The indexes and the graph fold, which speak of the whole history,
        go too; the progress fold stays (its viewers follow it)."""
        if not self.oversized:
            self.oversized = True
            self.by_type, self.dead_letters, self.fold = {}, array("q"), EventFold()
            self.index_bytes = 0
        self.newest_bytes, self._newest = 0, (None, -1, [])
        over = self._bytes() - keep_bytes
        drop = 0
        while over > 0 and drop < len(self.raws) - 1:
            freed = len(self.raws[drop]) + RECORD_OVERHEAD
            over -= freed
            self.record_bytes -= freed
            drop += 1
        if drop:
            # A new list: pages and records taken from the old one stay as they were.
            self.raws = self.raws[drop:]
            self.base += drop
        self._account()

    def restart(self) -> None:
        """Read anew from the start: the core's history is not the one the journal holds."""
        self.raws, self.by_type, self.dead_letters = [], {}, array("q")
        self.fold, self.progress = EventFold(), ProgressFold()
        self.base = self.progress_end = 0
        self.final = self.oversized = False
        self.record_bytes = self.index_bytes = self.progress_bytes = self.newest_bytes = 0
        self._newest = (None, -1, [])
        self._account()
        self.wake()

    def forget_events(self) -> None:
        """A history too big to keep: only how far it goes is remembered."""
        self.base = self.end
        self.raws, self.by_type, self.dead_letters = [], {}, array("q")
        self.fold = EventFold()
        self.record_bytes = self.index_bytes = self.newest_bytes = 0
        self._newest = (None, -1, [])
        self._account()

    def release(self) -> None:
        """Let go: nothing is kept but how far the history goes and the progress fold,
        which the journal's watchers go on feeding as they read from the runtime (viewers
        of the job's progress share it)."""
        self.forget_events()
        self.dropped = True
        self._account()
        self.wake()

    def _bytes(self) -> int:
        return (
            JOURNAL_OVERHEAD
            + self.record_bytes
            + self.index_bytes
            + self.progress_bytes
            + self.newest_bytes
        )

    def _account(self) -> None:
        size = 0 if self.dropped else self._bytes()
        self.meter.held += size - self.size
        self.size = size

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
        positions: Sequence[int] = (
            range(journal.base, journal.end) if kind is None else journal.by_type.get(kind, ())
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
            self._positions: Sequence[int] = range(first, journal.base + stop)
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
