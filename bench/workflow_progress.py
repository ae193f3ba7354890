"""What the workflow-progress routes cost the gateway, with its history journal and without.

    python -m bench.workflow_progress [--events 10000] [--viewers 100]

One mn-fake-core (1.2.31) holds a finished job of `--events` events and a live daemon job;
the gateway runs in front of it twice, side by side in one run: with the journal
(MN_HISTORY_CACHE_MB=64) and without it (0). For each it reports the gateway's own CPU
(from /proc) of a `GET /workflow-progress` of the finished job after the first, and, for
`--viewers` open progress streams of the live job (as many open job pages): the core
streams they cost, whether every viewer got a snapshot after each of six pauses and
resumes and how late, and the gateway's CPU and RSS growth meanwhile. A benchmark, not a
test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import orjson

from bench._procs import PeakRss, rss_bytes
from bench.compare import cpu_seconds
from bench.history_journal import (
    MB,
    _core_streams,
    live_job,
    print_side_by_side,
    side_by_side,
)


async def _viewers(base: str, pid: int, job_id: str, count: int, emits: int) -> dict:
    """`count` progress streams of the live job; `emits` pauses and resumes."""
    got: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    ready = asyncio.Semaphore(0)
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60, limits=limits) as client:

        async def view(n: int) -> None:
            url = f"/jobs/{job_id}/workflow-progress/stream"
            async with client.stream("GET", url) as answer:
                first = True
                async for line in answer.aiter_lines():
                    if line.startswith("data:") and '"agent_count"' in line:
                        status = orjson.loads(line[5:])["status"]
                        got[n].append((status, time.perf_counter()))
                        if first:
                            ready.release()
                            first = False

        idle = rss_bytes(pid)
        before_cpu = cpu_seconds(pid)
        with PeakRss(pid) as memory:
            tasks = [asyncio.create_task(view(n)) for n in range(count)]
            for _ in range(count):
                await asyncio.wait_for(ready.acquire(), 120)
            sent: list[tuple[str, float]] = []
            for k in range(emits):
                action, status = ("pause", "paused") if k % 2 == 0 else ("resume", "running")
                sent.append((status, time.perf_counter()))
                (await client.post(f"/jobs/{job_id}/{action}")).raise_for_status()
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        cpu = cpu_seconds(pid) - before_cpu
    delays, complete = [], 0
    for snapshots in got:
        seen_all = True
        for status, at in sent:
            later = [t - at for s, t in snapshots if s == status and t >= at]
            if later:
                delays.append(min(later))
            else:
                seen_all = False
        complete += seen_all
    return {
        "viewers that saw every change": f"{complete} of {count}",
        "snapshot delay p50 / max (ms)": (
            f"{statistics.median(delays) * 1000:.0f} / {max(delays) * 1000:.0f}" if delays else "-"
        ),
        "gateway CPU while viewed (s)": cpu,
        "RSS growth with the viewers (MB)": (memory.peak - idle) / MB,
    }


def run(events: int, viewers: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for gateway in side_by_side(events):
        client = gateway.client
        url = f"/jobs/{gateway.finished}/workflow-progress"
        client.get(url)
        calls = 20
        before = cpu_seconds(gateway.pid)
        for _ in range(calls):
            client.get(url).raise_for_status()
        figures: dict = {
            "progress of the finished job, CPU per call (ms)": (
                (cpu_seconds(gateway.pid) - before) / calls * 1000
            )
        }
        live_id, _last = live_job(gateway)
        before_streams = _core_streams(gateway.base)
        figures.update(asyncio.run(_viewers(gateway.base, gateway.pid, live_id, viewers, 6)))
        time.sleep(7)
        figures[f"core streams for {viewers} viewers"] = (
            _core_streams(gateway.base) - before_streams
        )
        results[gateway.label] = figures
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--viewers", type=int, default=100)
    args = parser.parse_args()
    results = run(args.events, args.viewers)
    print_side_by_side(f"A {args.events:,}-event finished job and a live job", results)


if __name__ == "__main__":
    main()
