"""HeapTrimmer gives the C heap's free pages back on a timer, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import subprocess
import sys
import threading

import pytest

from mn_api.entrypoints.heap import HeapTrimmer, fix_glibc_thresholds


async def test_trims_on_every_interval_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []
    three = threading.Event()

    def trim() -> None:
        threads.append(threading.current_thread())
        if len(threads) >= 3:
            three.set()

    trimmer = HeapTrimmer(0.001, trim=trim)
    trimmer.start()
    assert await asyncio.to_thread(three.wait, 10)
    await trimmer.stop()
    stopped_at = len(threads)
    await asyncio.sleep(0.05)
    assert len(threads) == stopped_at >= 3
    assert threading.main_thread() not in threads


async def test_without_a_trim_nothing_runs() -> None:
    trimmer = HeapTrimmer(0.001, trim=None)
    trimmer.start()
    await asyncio.sleep(0.02)
    assert trimmer.trims == 0
    await trimmer.stop()


async def test_a_failing_trim_is_logged_once_and_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise OSError("no heap")

    trimmer = HeapTrimmer(0.001, trim=broken)
    with caplog.at_level(logging.WARNING, logger="mn_api.heap"):
        trimmer.start()
        assert trimmer._task is not None
        await asyncio.wait_for(asyncio.shield(trimmer._task), 10)  # it gave up by itself
    await trimmer.stop()
    assert calls == [1] and trimmer.trims == 0
    assert [r.getMessage() for r in caplog.records] == ["trimming the heap failed: OSError"]


# Run in a fresh interpreter: in a process whose heap already holds large free chunks,
# glibc serves large blocks from those whatever its thresholds.
_MAPPED_APART = """
import ctypes, sys
from mn_api.entrypoints.heap import fix_glibc_thresholds

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
big = bytearray(8 * 1024 * 1024)
del big  # freeing a mapped block raises glibc's own threshold to its size
if sys.argv[1] == "pinned":
    assert fix_glibc_thresholds()
mapped = libc.mallinfo2().hblks
blocks = [bytearray(300 * 1024) for _ in range(4)]
print(libc.mallinfo2().hblks - mapped)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize(("mode", "mapped"), [("pinned", 4), ("free", 0)])
def test_pinned_thresholds_map_large_blocks_apart(mode: str, mapped: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    done = subprocess.run(
        [sys.executable, "-c", _MAPPED_APART, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(done.stdout) == mapped


def test_malloc_settings_from_the_environment_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert not fix_glibc_thresholds()
