"""HeapTrimmer: the C heap's free pages go back to the system now and then (glibc only).

Python keeps its small objects in arenas of its own, but everything larger (request and
answer bodies, the dictionaries of jobs and events) comes from the C library's heap.
glibc gives freed memory back to the system only from the top of that heap, so after a
burst of traffic the pages freed below live data stay resident: the process grows with
each burst although it holds no more than before. `malloc_trim` hands those pages back;
it runs in a worker thread, so the event loop never waits for it.

glibc also moves its threshold for serving large blocks from their own mappings upwards
each time such a block is freed (up to 32 MiB), after which large bodies come from the heap
too and leave holes between live data when freed. `fix_glibc_thresholds` pins that
threshold, and the one for trimming the heap's top, at 128 KiB: a large block that no free
space of the heap holds is mapped apart and given back on free instead of growing the
heap, and the heap's top goes back as soon as 128 KiB of it are free. Measured with
bench/soak.py (bench/SOAK.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
from collections.abc import Callable
from contextlib import suppress

log = logging.getLogger("mn_api.heap")

TRIM_EVERY_SECONDS = 30.0
LARGE_BLOCK_BYTES = 128 * 1024
# mallopt's parameters (malloc.h), and the environment variables that set them instead.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def fix_glibc_thresholds(large_block_bytes: int = LARGE_BLOCK_BYTES) -> bool:
    """Pin glibc's mmap and trim thresholds (see above); False where there is no glibc,
    or where the environment sets malloc's tunables itself (those are left to rule)."""
    libc = _glibc()
    if libc is None or any(name in os.environ for name in _TUNABLES):
        return False
    try:
        mallopt = libc.mallopt
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, large_block_bytes)
        and mallopt(M_TRIM_THRESHOLD, large_block_bytes)
    )


def glibc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None on a C library without it (musl, macOS)."""
    libc = _glibc()
    if libc is None:
        return None
    try:
        trim = libc.malloc_trim
    except AttributeError:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    def __init__(
        self,
        interval_seconds: float = TRIM_EVERY_SECONDS,
        trim: Callable[[], object] | None = None,
    ) -> None:
        self._interval = interval_seconds
        self._trim = trim
        self._task: asyncio.Task[None] | None = None
        self.trims = 0

    def start(self) -> None:
        """Trim every interval from now on (nothing to do where there is no trim)."""
        if self._trim is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(self._trim), name="mn-heap-trim")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, trim: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(trim)
            except Exception as error:  # never worth stopping the gateway for
                log.warning("trimming the heap failed: %s", type(error).__name__)
                return
            self.trims += 1
