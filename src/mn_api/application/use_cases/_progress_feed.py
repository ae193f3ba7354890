"""The snapshots of a job's progress as they are shared: each one's document and JSON made
once, and, for a live job watched through the history journal, one task that builds them for
every viewer of the job at a pace that grows with what they cost to send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Any

from mn_api.domain.events import EventRecord, Heartbeat, RuntimeState
from mn_api.domain.progress import ProgressFold, status_stage
from mn_api.domain.status import is_terminal

# How many waiting viewers are handed a new snapshot before the event loop serves anything
# else: a snapshot of hundreds of kilobytes for hundreds of viewers is sent in slices.
HAND_OUT_BATCH = 10
# A job nobody has watched for this long is no longer followed for its viewers.
IDLE_SECONDS = 5.0
# How long a first snapshot waits, at most, for the history still being read, and the pause
# in it that says the history read so far has come.
FIRST_READ_SECONDS = 1.0
HISTORY_PAUSE_SECONDS = 0.05


class Snapshot:
    """One snapshot of a job's progress: its document, and that document as JSON, both made
    once and shared by every viewer it goes to. `framed` keeps the form a stream sends it
    in, made by the first stream that sends it (every stream frames it alike)."""

    __slots__ = ("_frame", "document", "json", "sequence", "status")

    def __init__(self, document: dict[str, Any], json: bytes) -> None:
        self.document = document
        self.json = json
        self.sequence: int = document["sequence"]
        self.status: str = document["status"]
        self._frame: bytes | None = None

    def framed(self, frame: Callable[[Snapshot], bytes]) -> bytes:
        if self._frame is None:
            self._frame = frame(self)
        return self._frame

    def follows(self, last: Snapshot) -> bool:
        """Whether this snapshot tells a viewer who saw `last` something new, and nothing
        older: no fewer events taken in, and the job no earlier in its life."""
        if self is last or (self.sequence, self.status) == (last.sequence, last.status):
            return False
        return self.sequence >= last.sequence and status_stage(self.status) >= status_stage(
            last.status
        )


class Channel:
    """The snapshots of one live job for all of its viewers: one task reads the journal's
    watch of the job and builds a snapshot after each change, no sooner than `pace` allows
    (given its size and the number of viewers); each viewer is handed the newest one when it
    can take it (a slow viewer skips those it had no time for), and a heartbeat when nothing
    changed for `heartbeat` seconds. The last snapshot comes once the job has ended.

    The first snapshot waits for the history still being read while `behind` says it is
    behind the runtime's report of the job (another reader of the journal started its
    follower, which has yet to read the job's start): never an empty history for a job that
    runs, followed by the real one."""

    def __init__(
        self,
        job_id: str,
        feed: AsyncIterator[EventRecord | Heartbeat],
        *,
        build: Callable[[str | None], Snapshot],
        behind: Callable[[], bool],
        final_status: Callable[[], Awaitable[str]],
        fold: Callable[[], ProgressFold],
        pace: Callable[[int, int], float],
        heartbeat: float,
        on_closed: Callable[[Channel], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.latest: Snapshot  # set once the first snapshot is built (`ready`)
        self.ready = asyncio.Event()
        self._feed = feed
        self._build = build
        self._behind = behind
        self._final_status = final_status
        self._fold = fold
        self._pace = pace
        self._heartbeat = heartbeat
        self._on_closed = on_closed
        self._clock = clock
        self.state: RuntimeState | None = None
        self._states = 0  # how many runtime states have been said
        self.error: BaseException | None = None
        self.ended = False
        self.closed = False
        self.viewers = 0
        self._waiting: set[asyncio.Future[None]] = set()
        self._last_seen = clock()  # when a viewer last came or left
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"progress-{self.job_id}")

    def expect_viewer(self) -> None:
        """A viewer is on its way: the channel stays open for it a while."""
        self._last_seen = self._clock()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def view(self) -> AsyncIterator[Snapshot | Heartbeat]:
        """The newest snapshot now, then each newer one the viewer has time for, runtime
        states as they are said, heartbeats while nothing changes; the last snapshot once
        the job has ended (a failure of the feed is raised)."""
        self.viewers += 1
        self._last_seen = self._clock()
        try:
            sent = self.latest
            states = self._states
            yield sent
            while True:
                if self.latest is sent and self._states == states and not self.closed:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiting.add(waiter)
                    try:
                        async with asyncio.timeout(self._heartbeat):
                            await waiter
                    except TimeoutError:
                        yield Heartbeat()
                        continue
                    finally:
                        self._waiting.discard(waiter)
                if self._states != states and self.state is not None:
                    states = self._states
                    yield self.state
                if self.latest is not sent:
                    sent = self.latest
                    yield sent
                if self.error is not None:
                    raise self.error
                if self.closed:
                    return
        finally:
            self.viewers -= 1
            self._last_seen = self._clock()

    async def _run(self) -> None:
        changed = asyncio.Event()
        states: list[RuntimeState] = []
        pump = asyncio.create_task(pump_feed(self._feed, None, changed, states))
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout(FIRST_READ_SECONDS):
                    await self._history_read(pump, changed)
            changed.clear()
            self.latest = self._build(None)
            self.ready.set()
            while not pump.done() or changed.is_set():
                try:
                    async with asyncio.timeout(IDLE_SECONDS):
                        await either(changed, pump)
                except TimeoutError:
                    pass
                if self._unwatched():
                    return
                if not changed.is_set():
                    continue
                changed.clear()
                news = False
                if states:
                    self.state = states[-1]
                    states.clear()
                    self._states += 1
                    news = True
                snapshot = self._build(None)
                if snapshot.follows(self.latest):
                    self.latest = snapshot
                    news = True
                if news:
                    await self._hand_out()
                    # What comes meanwhile makes one snapshot.
                    await asyncio.sleep(self._pace(len(self.latest.json), self.viewers))
            pump.result()  # a failure of the feed is the viewers'
            fold = self._fold()
            status = fold.status if is_terminal(fold.status or "") else None
            final = self._build(status or await self._final_status())
            if final.follows(self.latest):
                self.latest = final
            self.ended = True
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.error = error  # raised again to every viewer
        finally:
            self.closed = True
            self.ready.set()
            self._on_closed(self)
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump
            self._wake_all()

    async def _history_read(self, pump: asyncio.Task[None], changed: asyncio.Event) -> None:
        """Wait until what the feed brings pauses, and for more while the history read so
        far is behind the runtime's report (its follower has yet to read the job's start)."""
        while not pump.done() and await more_within(changed, HISTORY_PAUSE_SECONDS):
            pass
        while self._behind() and not pump.done():
            await either(changed, pump)
            while not pump.done() and await more_within(changed, HISTORY_PAUSE_SECONDS):
                pass

    def _unwatched(self) -> bool:
        return self.viewers == 0 and self._clock() - self._last_seen >= IDLE_SECONDS

    async def _hand_out(self) -> None:
        """Wake the waiting viewers a slice at a time: between slices the event loop serves
        whatever else is waiting (each woken viewer sends the snapshot as it wakes)."""
        waiting, self._waiting = self._waiting, set()
        for count, waiter in enumerate(waiting, 1):
            if not waiter.done():
                waiter.set_result(None)
            if count % HAND_OUT_BATCH == 0:
                await asyncio.sleep(0)

    def _wake_all(self) -> None:
        waiting, self._waiting = self._waiting, set()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)


async def pump_feed(
    feed: AsyncIterator[EventRecord | Heartbeat],
    fold: ProgressFold | None,
    changed: asyncio.Event,
    states: list[RuntimeState],
) -> None:
    """Read the feed to its end, folding what comes (unless the journal folds it) and
    saying that something changed; what the feed says of the runtime is kept in `states`
    for the stream to pass on."""
    async with aclosing(feed):
        async for item in feed:
            if isinstance(item, EventRecord):
                if fold is not None:
                    fold.add(item.value)
                changed.set()
            elif isinstance(item, RuntimeState):
                states.append(item)
                changed.set()


async def more_within(changed: asyncio.Event, seconds: float) -> bool:
    """Whether more comes within `seconds` (the history is still arriving)."""
    changed.clear()
    try:
        async with asyncio.timeout(seconds):
            await changed.wait()
    except TimeoutError:
        return False
    return True


async def either(changed: asyncio.Event, pump: asyncio.Task[None]) -> None:
    """Return when something changed or the feed has ended."""
    if changed.is_set() or pump.done():
        return
    waiting = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait({waiting, pump}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
