"""BoundedPool: a few threads of their own for blocking work, with a short queue in front.

Reading the host's files blocks; it must neither hold up the event loop nor take the
threads asyncio's default executor lends to every other blocking call (bundle uploads
among them). Work beyond the threads and the queue is refused at once, never queued
without end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from mn_api.domain.errors import BlueprintReadsBusyError

T = TypeVar("T")


class BoundedPool:
    """`workers` threads; up to `waiting` more calls wait their turn, the rest are refused
    with BlueprintReadsBusyError (503). A slot is held until the work itself has ended,
    even when the caller stopped waiting for it."""

    def __init__(self, workers: int, waiting: int, name: str) -> None:
        if workers < 1 or waiting < 0:
            raise ValueError("a pool needs a worker, and cannot queue fewer than no calls")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._capacity = workers + waiting
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """The calls running or waiting right now."""
        return self._held

    async def run(
        self,
        work: Callable[[], T],
        abandoned: Callable[[T], None] | None = None,
    ) -> T:
        """`work()` on a thread of the pool. When the caller is cancelled while the work
        runs, `abandoned` receives what the work returns (to close it, say)."""
        with self._lock:
            if self._held >= self._capacity:
                raise BlueprintReadsBusyError(
                    "the gateway is reading as many blueprints as it may at once: try again shortly"
                )
            self._held += 1
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if abandoned is not None:
                future.add_done_callback(_hand_over(abandoned))
            raise

    def close(self) -> None:
        """Stop taking work; what waits is dropped, what runs finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._held -= 1


def _hand_over(abandoned: Callable[[T], None]) -> Callable[[Future[T]], None]:
    def done(future: Future[T]) -> None:
        if not future.cancelled() and future.exception() is None:
            abandoned(future.result())

    return done
