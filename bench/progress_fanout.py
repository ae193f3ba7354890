"""What many viewers of a big live job's progress cost the gateway's other answers.

    python -m bench.progress_fanout [--agents 300] [--viewers 200] [--seconds 20]

One mn-fake-core (d26bef71, the real core's profile) runs a live job of `--agents` agents:
a router sends the start message to `--agents - 2` host-local executors whose commands end
one after another (`config.simulate.run_ms`), each result going to an aggregator that
completes the job once it has them all; the job changes every few hundred milliseconds for
longer than the run. The gateway (with its history journal) runs in front of it.

For `--seconds`, `--viewers` progress streams of the job are open (as many open job pages),
in a process of their own that reads raw bytes, while another process asks `/health` every
20 ms. Reported: the health answers' latency (p50, p99, max) before the viewers and with
them (from the first viewer's request to the last one's end), the snapshots a viewer got
and their size, whether one viewer that reads every snapshot saw any go backwards (status,
sequence, elapsed time, done executors), and the gateway's CPU. A benchmark, not a test: it
prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._procs import BIN, free_port, start, stop, wait_http
from bench.compare import cpu_seconds, gateway_env

HOST_LOCAL = "MirrorNeuron.Runner.HostLocal"
HEALTH_EVERY = 0.02
# The ranks of a job's statuses: a stream's snapshots never go to a lower one.
RANK = {"pending": 0, "running": 1, "paused": 1, "cancelling": 2}


def manifest(agents: int, lasts: float) -> dict[str, Any]:
    """router -> executors -> aggregator; the executors' commands end evenly over `lasts` s."""
    workers = max(agents - 2, 1)
    step_ms = int(lasts * 1000 / workers)
    nodes: list[dict[str, Any]] = [{"node_id": "router", "agent_type": "router"}]
    edges = []
    for n in range(workers):
        worker = f"worker-{n:03d}"
        config = {
            "runner_module": HOST_LOCAL,
            "command": ["true"],
            "simulate": {"run_ms": 1000 + n * step_ms},
        }
        nodes.append({"node_id": worker, "agent_type": "executor", "config": config})
        edges.append({"from_node": "router", "to_node": worker, "message_type": "init"})
        edges.append({"from_node": worker, "to_node": "collect", "message_type": "executor_result"})
    nodes.append(
        {"node_id": "collect", "agent_type": "aggregator", "config": {"complete_after": workers}}
    )
    return {
        "manifest_version": "1",
        "graph_id": "fanout",
        "nodes": nodes,
        "edges": edges,
        "entrypoints": ["router"],
        "initial_inputs": {"router": [{"n": 1}]},
    }


class Prober(threading.Thread):
    """Asks `/health` every HEALTH_EVERY seconds; keeps (when asked, how long it took)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as client:
            while not self.halt.is_set():
                asked = time.time()
                started = time.perf_counter()
                client.get("/api/v1/health").raise_for_status()
                self.samples.append((asked, time.perf_counter() - started))
                time.sleep(HEALTH_EVERY)

    def between(self, first: float, last: float) -> list[float]:
        return [took for asked, took in self.samples if first <= asked <= last]


def _latency(taken: list[float]) -> str:
    if not taken:
        return "-"
    ordered = sorted(taken)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered) * 1000:.1f} / {p99 * 1000:.1f} / {ordered[-1] * 1000:.0f}"


async def _raw_viewer(host: str, port: int, path: str, until: float, out: dict) -> None:
    """One viewer that reads the stream's bytes and counts the snapshots in them."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    tail = b""
    try:
        while time.time() < until:
            try:
                async with asyncio.timeout(max(until - time.time(), 0.01)):
                    chunk = await reader.read(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                break
            seen = tail + chunk
            count = seen.count(b"event: snapshot")
            if count and "first" not in out:
                out["first"] = time.time()
            out["snapshots"] = out.get("snapshots", 0) + count
            out["bytes"] = out.get("bytes", 0) + len(chunk)
            tail = seen[-20:]
            if count:
                tail = tail.replace(b"event: snapshot", b"")
    finally:
        writer.close()


async def _checking_viewer(base: str, path: str, until: float, out: dict) -> None:
    """One viewer that reads every snapshot and notes any that goes backwards."""
    backwards: list[str] = []
    last: dict[str, Any] | None = None
    count = 0
    async with (
        httpx.AsyncClient(base_url=base, timeout=120) as client,
        client.stream("GET", path) as answer,
    ):
        try:
            async with asyncio.timeout(max(until - time.time(), 0.01)):
                async for line in answer.aiter_lines():
                    if not line.startswith("data:") or '"agent_count"' not in line:
                        continue
                    now = orjson.loads(line[5:])
                    count += 1
                    if last is not None:
                        backwards.extend(_went_back(last, now))
                    last = now
        except TimeoutError:
            pass
    out.update(snapshots=count, backwards=backwards[:5], went_back=len(backwards))


def _went_back(last: dict[str, Any], now: dict[str, Any]) -> list[str]:
    found = []
    if RANK.get(now["status"], 3) < RANK.get(last["status"], 3):
        found.append(f"status {last['status']} -> {now['status']}")
    for key in ("sequence", "elapsed_seconds"):
        if now[key] < last[key]:
            found.append(f"{key} {last[key]} -> {now[key]}")
    # Each executor of this job gets one message: once done, it stays done (the aggregator
    # takes one result after another, running again with each).
    done = {a["id"] for a in last["agents"] if a["role"] == "executor" and a["status"] == "done"}
    undone = [a["id"] for a in now["agents"] if a["id"] in done and a["status"] != "done"]
    if undone:
        found.append(f"done again at work: {', '.join(undone[:3])}")
    return found


async def _viewers(base: str, job_id: str, viewers: int, seconds: float) -> dict:
    host, port = base.removeprefix("http://").split(":")
    path = f"/api/v1/jobs/{job_id}/workflow-progress/stream"
    started = time.time()
    until = started + seconds
    outs: list[dict] = [{} for _ in range(viewers)]
    tasks = [asyncio.create_task(_checking_viewer(base, path, until, outs[0]))]
    tasks += [
        asyncio.create_task(_raw_viewer(host, int(port), path, until, outs[n]))
        for n in range(1, viewers)
    ]
    await asyncio.gather(*tasks, return_exceptions=True)
    raw = outs[1:]
    firsts = [o["first"] - started for o in raw if "first" in o]
    return {
        "started": started,
        "ended": time.time(),
        "with a snapshot": sum(1 for o in raw if o.get("snapshots")) + bool(outs[0]["snapshots"]),
        "first snapshot p50 / max (s)": (
            f"{statistics.median(firsts):.2f} / {max(firsts):.2f}" if firsts else "-"
        ),
        "snapshots per viewer": statistics.median([o.get("snapshots", 0) for o in raw] or [0]),
        "MB sent to the viewers": sum(o.get("bytes", 0) for o in raw) / 1e6,
        "checked": outs[0],
    }


def _run_viewers(base: str, job_id: str, viewers: int, seconds: float, results: Any) -> None:
    results.put(asyncio.run(_viewers(base, job_id, viewers, seconds)))


def run(agents: int, viewers: int, seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        core_port, port = free_port(), free_port()
        core = start(
            [str(BIN / "mn-fake-core"), "--port", str(core_port), "--release", "d26bef71"],
            ready_line="listening",
        )
        env = {
            **gateway_env(f"127.0.0.1:{core_port}", port, Path(tmp)),
            "MN_LOG_LEVEL": "WARNING",
            "MN_RUNTIME": "grpc",
        }
        gateway = start([str(BIN / "mn-api")], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/api/v1/health")
            with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as client:
                answer = client.post("/jobs", json={"manifest": manifest(agents, seconds + 40)})
                job_id = answer.raise_for_status().json()["job_id"]
                while client.get(f"/jobs/{job_id}").json()["job"]["status"] != "running":
                    time.sleep(0.05)
                time.sleep(1.0)
                document = client.get(f"/jobs/{job_id}/workflow-progress").content
            prober = Prober(base)
            prober.start()
            time.sleep(3.0)
            spawn = multiprocessing.get_context("spawn")
            results = spawn.Queue()
            cpu = cpu_seconds(gateway.pid)
            viewing = spawn.Process(
                target=_run_viewers, args=(base, job_id, viewers, seconds, results)
            )
            viewing.start()
            seen = results.get(timeout=seconds + 600)
            viewing.join()
            cpu = cpu_seconds(gateway.pid) - cpu
            time.sleep(1.0)
            prober.halt.set()
            prober.join()
            with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as client:
                status = client.get(f"/jobs/{job_id}").json()["job"]["status"]
        finally:
            stop(gateway)
            stop(core)
    first = prober.samples[0][0] if prober.samples else 0.0
    checked = seen.pop("checked")
    figures["snapshot size (KB)"] = len(document) / 1024
    figures["/health p50 / p99 / max before the viewers (ms)"] = _latency(
        prober.between(first, seen["started"])
    )
    figures["/health p50 / p99 / max with the viewers (ms)"] = _latency(
        prober.between(seen["started"], seen["ended"])
    )
    figures["health answers with the viewers (in s)"] = (
        f"{len(prober.between(seen['started'], seen['ended']))}"
        f" (in {seen['ended'] - seen['started']:.1f})"
    )
    figures["viewers with a snapshot"] = f"{seen['with a snapshot']} of {viewers}"
    for key in ("first snapshot p50 / max (s)", "snapshots per viewer", "MB sent to the viewers"):
        figures[key] = seen[key]
    figures["snapshots that went backwards (of those read)"] = (
        f"{checked['went_back']} of {checked['snapshots']}"
        + (f" ({'; '.join(checked['backwards'])})" if checked["backwards"] else "")
    )
    slow = [
        f"{asked - seen['started']:.1f}"
        for asked, took in prober.samples
        if seen["started"] <= asked <= seen["ended"] and took > 0.05
    ]
    figures["/health answers over 50 ms (s after the first viewer)"] = " ".join(slow) or "none"
    figures["gateway CPU with the viewers (s)"] = cpu
    figures["job still live at the end"] = status == "running"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    figures = run(args.agents, args.viewers, args.seconds)
    print(f"{args.viewers} viewers of a live {args.agents}-agent job, {args.seconds:.0f} s\n")
    print("| figure | value |\n|---|---|")
    for figure, value in figures.items():
        print(f"| {figure} | {f'{value:.1f}' if isinstance(value, float) else value} |")


if __name__ == "__main__":
    main()
