"""What reading job histories costs the gateway, with its history journal and without it.

    python -m bench.history_journal [--events 10000] [--watchers 200] [--reconnects 50]
    python -m bench.history_journal --limits [--sizes] [--events 10000] [--watched 8]
        [--budget-kb 300] [--live-events 400] [--pace-ms 5]

One scripted 1.2.31 core (mn-fake-core) holds a finished job of `--events` events and a live
daemon job; the gateway runs in front of it twice, side by side in one run: with the journal
(MN_HISTORY_CACHE_MB=64) and without it (0). For each it reports:

- the CPU of paging the finished history by 100 against one full listing;
- the CPU of an agent-graph call of the finished job after the first;
- the CPU of one Web UI poll cycle (details + events + graph);
- for `--watchers` SSE watchers of the live job: the core streams opened, whether every
  watcher saw each new event and how late, and the gateway's RSS growth;
- the core streams opened by `--reconnects` Last-Event-ID reconnects.

CPU is the gateway process's own (from /proc), so the client's work is not counted. New
events on the live job come from pausing and resuming it. A benchmark, not a test: it prints
figures and asserts nothing.

With `--limits`, the journal's limits instead (bench/journal_limits.py): a job that ended
without its end event, and the memory budget over watched jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx

from bench._procs import BIN, PeakRss, free_port, rss_bytes, start, stop, wait_http
from bench.compare import cpu_seconds, gateway_env

MB = 1024 * 1024
TOKEN = "bench-core-token"
STREAM_CALLS = re.compile(r'^mn_api_core_calls_total\{[^}]*rpc="StreamEvents"[^}]*\} (\S+)$')


def _daemon_manifest() -> dict:
    return {
        "manifest_version": "1",
        "graph_id": "live",
        "daemon": True,
        "nodes": [
            {"node_id": "source", "agent_type": "router"},
            {"node_id": "sink", "agent_type": "aggregator"},
        ],
        "edges": [{"from_node": "source", "to_node": "sink", "message_type": "reading"}],
        "entrypoints": ["source"],
    }


def _core_streams(base: str) -> float:
    """StreamEvents calls the gateway opened so far: those that closed (counted as each one
    closes), and those its journal holds open."""
    total = 0.0
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        found = STREAM_CALLS.match(line)
        if found:
            total += float(found.group(1))
        elif line.startswith("mn_api_history_journal_core_streams "):
            total += float(line.split()[1])
    return total


def _cpu_of(pid: int, work) -> float:
    before = cpu_seconds(pid)
    work()
    return cpu_seconds(pid) - before


def _finished_figures(client: httpx.Client, pid: int, job_id: str, events: int) -> dict:
    url = f"/jobs/{job_id}"
    client.get(f"{url}/events")  # the first read, as a first visitor's
    fulls = 20
    full = _cpu_of(pid, lambda: [client.get(f"{url}/events") for _ in range(fulls)]) / fulls

    def paging() -> None:
        offset: int | None = 0
        while offset is not None:
            offset = client.get(f"{url}/events", params={"offset": offset, "limit": 100}).json()[
                "next_offset"
            ]

    rounds = 3
    paged = _cpu_of(pid, lambda: [paging() for _ in range(rounds)]) / rounds
    pages = -(-events // 100)
    # The floor under any paging: as many plain requests that read nothing at all.
    plain = _cpu_of(pid, lambda: [client.get("/health") for _ in range(pages * rounds)]) / rounds
    client.get(f"{url}/graph")
    graphs = 50
    graph = _cpu_of(pid, lambda: [client.get(f"{url}/graph") for _ in range(graphs)]) / graphs
    cycles = 10

    def cycle() -> None:
        for _ in range(cycles):
            client.get(url)
            client.get(f"{url}/events")
            client.get(f"{url}/graph")

    return {
        "full listing CPU (ms)": full * 1000,
        "paging by 100 CPU (ms)": paged * 1000,
        "paging / full listing": paged / full if full else float("inf"),
        "as many plain /health requests CPU (ms)": plain * 1000,
        "graph call CPU after the first (ms)": graph * 1000,
        "details + events + graph cycle CPU (ms)": _cpu_of(pid, cycle) / cycles * 1000,
    }


async def _watchers(
    base: str, pid: int, job_id: str, count: int, emits: int, start_id: int
) -> tuple[dict, list[dict[int, float]], list[float]]:
    """`count` SSE watchers of the live job from after `start_id`; `emits` new events, one
    pause or resume each. Answers the figures, what each watcher saw when, and when each
    event was asked for."""
    seen: list[dict[int, float]] = [{} for _ in range(count)]
    ready = asyncio.Semaphore(0)
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60, limits=limits) as client:

        async def watch(n: int) -> None:
            headers = {"Last-Event-ID": str(start_id)}
            async with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=headers) as r:
                ready.release()
                async for line in r.aiter_lines():
                    if line.startswith("id:"):
                        seen[n][int(line[3:])] = time.perf_counter()

        idle = rss_bytes(pid)
        with PeakRss(pid) as memory:
            tasks = [asyncio.create_task(watch(n)) for n in range(count)]
            for _ in range(count):
                await asyncio.wait_for(ready.acquire(), 60)
            await asyncio.sleep(1.0)
            sent_at: list[float] = []
            for k in range(emits):
                action = "pause" if k % 2 == 0 else "resume"
                sent_at.append(time.perf_counter())
                answer = await client.post(f"/jobs/{job_id}/{action}")
                answer.raise_for_status()
                await asyncio.sleep(0.3)
            await asyncio.sleep(2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"RSS growth with the watchers (MB)": (memory.peak - idle) / MB}, seen, sent_at


async def _deliveries(
    base: str, job_id: str, start_id: int, seen: list[dict[int, float]], sent_at: list[float]
) -> dict:
    """Which watcher saw each paused or resumed event, and how long after it was asked."""
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60) as client:
        history = (await client.get(f"/jobs/{job_id}/events")).json()
    controls = [
        n
        for n, event in enumerate(history["data"])
        if n > start_id and event["type"] in ("job_paused", "job_resumed")
    ]
    emitted = dict(zip(controls, sent_at, strict=False))
    delays = [
        watcher[event] - sent
        for watcher in seen
        for event, sent in emitted.items()
        if event in watcher
    ]
    complete = sum(1 for watcher in seen if all(e in watcher for e in emitted))
    return {
        "watchers that saw every new event": f"{complete} of {len(seen)}",
        "delivery delay p50 / max (ms)": (
            f"{statistics.median(delays) * 1000:.0f} / {max(delays) * 1000:.0f}" if delays else "-"
        ),
    }


async def _settled_end(base: str, job_id: str) -> int:
    """The position of the live job's last event, once its history stopped growing."""
    last = -2
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60) as client:
        while True:
            end = len((await client.get(f"/jobs/{job_id}/events")).json()["data"]) - 1
            if end == last:
                return end
            last = end
            await asyncio.sleep(0.5)


async def _reconnects(base: str, job_id: str, count: int, last: int) -> None:
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60) as client:
        for _ in range(count):
            headers = {"Last-Event-ID": str(max(last - 5, 0))}
            async with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=headers) as r:
                async for line in r.aiter_lines():
                    if line.startswith("id:"):
                        break


class Gateway(NamedTuple):
    """One gateway of a side-by-side run, and what it serves."""

    label: str
    pid: int
    base: str
    client: httpx.Client
    finished: str  # the seeded finished job


def side_by_side(events: int) -> Iterator[Gateway]:
    """One mn-fake-core (1.2.31) holding a finished job of `events` events, and in front of
    it, one after the other, a gateway with the journal and one without."""
    with tempfile.TemporaryDirectory() as tmp:
        core_port = free_port()
        core = start(
            [
                str(BIN / "mn-fake-core"), "--port", str(core_port), "--release", "1.2.31",
                "--token", TOKEN, "--seed-jobs", "1", "--seed-events", str(events),
            ],
            ready_line="listening",
        )  # fmt: skip
        try:
            for label, cache_mb in (("journal", "64"), ("no journal", "0")):
                port = free_port()
                files = Path(tmp) / label.replace(" ", "-")
                files.mkdir()
                env = {
                    **gateway_env(f"127.0.0.1:{core_port}", port, files),
                    "MN_LOG_LEVEL": "WARNING",
                    "MN_RUNTIME": "grpc",
                    "MN_GRPC_AUTH_TOKEN": TOKEN,
                    "MN_HISTORY_CACHE_MB": cache_mb,
                }
                gateway = start([str(BIN / "mn-api")], env=env)
                base = f"http://127.0.0.1:{port}"
                try:
                    wait_http(f"{base}/api/v1/health")
                    with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as client:
                        listing = client.get("/jobs", params={"include_terminal": "true"}).json()
                        finished = next(
                            j["job_id"] for j in listing["data"] if j["status"] == "completed"
                        )
                        yield Gateway(label, gateway.pid, base, client, finished)
                finally:
                    stop(gateway)
        finally:
            stop(core)


def live_job(gateway: Gateway) -> tuple[str, int]:
    """A live daemon job, running and quiet, nobody following it: its id and last position."""
    client = gateway.client
    live_id = client.post("/jobs", json={"manifest": _daemon_manifest()}).json()["job_id"]
    while client.get(f"/jobs/{live_id}").json()["job"]["status"] != "running":
        time.sleep(0.05)
    last = asyncio.run(_settled_end(gateway.base, live_id))
    time.sleep(7)  # the journal's follower stops once nobody watches
    return live_id, last


def run(events: int, watchers: int, reconnects: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for gateway in side_by_side(events):
        base = gateway.base
        figures = _finished_figures(gateway.client, gateway.pid, gateway.finished, events)
        live_id, start_id = live_job(gateway)
        before = _core_streams(base)
        watched, seen, sent_at = asyncio.run(
            _watchers(base, gateway.pid, live_id, watchers, 6, start_id)
        )
        time.sleep(7)
        figures[f"core streams for {watchers} watchers"] = _core_streams(base) - before
        figures.update(watched)
        figures.update(asyncio.run(_deliveries(base, live_id, start_id, seen, sent_at)))
        last = asyncio.run(_settled_end(base, live_id))
        time.sleep(7)
        before = _core_streams(base)
        asyncio.run(_reconnects(base, live_id, reconnects, last))
        time.sleep(7)
        figures[f"core streams for {reconnects} reconnects"] = _core_streams(base) - before
        results[gateway.label] = figures
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--reconnects", type=int, default=50)
    parser.add_argument(
        "--limits",
        action="store_true",
        help="the journal's limits instead, in process (bench/journal_limits.py)",
    )
    parser.add_argument("--sizes", action="store_true", help="with --limits: the account only")
    parser.add_argument("--watched", type=int, default=8)
    parser.add_argument("--budget-kb", type=int, default=300)
    parser.add_argument("--live-events", type=int, default=400)
    parser.add_argument("--pace-ms", type=int, default=5)
    args = parser.parse_args()
    if args.limits:
        limits(args)
        return
    results = run(args.events, args.watchers, args.reconnects)
    print_side_by_side(f"A {args.events:,}-event finished job and a live job", results)


def limits(args: argparse.Namespace) -> None:
    """The journal's memory budget over watched jobs, and a job that ended without its end
    event; or (`--sizes`) what a kept history takes beside what the journal accounts."""
    from bench import journal_limits

    if args.sizes:
        figures = asyncio.run(journal_limits.sizes(args.events))
        print_side_by_side("A kept history, traced and accounted", {"": figures})
        return
    figures = asyncio.run(journal_limits.lost_end(args.events))
    print_side_by_side(
        f"A {args.events:,}-event job that ended without its end event", {"": figures}
    )
    print()
    figures = asyncio.run(
        journal_limits.budget(args.watched, args.budget_kb, args.live_events, args.pace_ms)
    )
    title = f"{args.watched} watched live jobs of {args.live_events + 1} events, 3 watchers each"
    print_side_by_side(title, {"": figures})


def print_side_by_side(title: str, results: dict[str, dict]) -> None:
    """The figures of each configuration as one Markdown table, a column each."""
    labels = list(results)
    print(f"{title}, one gateway worker\n")
    print("| figure | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for figure in results[labels[0]]:
        cells = []
        for label in labels:
            value = results[label].get(figure, "-")
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        print(f"| {figure} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
