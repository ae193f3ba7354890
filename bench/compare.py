"""Side-by-side benchmark: this gateway against the published one, on the same core and load.

    python -m bench.compare [--duration 10] [--rounds 2] [--keep-peer]

Starts mn-fake-core preloaded with finished jobs (`--seed-jobs`, `--seed-events`, one
100,000-event history), this gateway and the peer (`mirrorneuron-api==1.1.0`, installed
from PyPI into a throwaway virtual environment under the system temp folder), each with one
worker and pointed at the same core, then drives each with wrk (64 connections) in
alternation, A B A B. It also measures two ceilings in the same run: a bare ASGI app on
the same server stack (the HTTP stack's limit) and a tight grpc.aio client of the core
(the core's limit). Prints a Markdown table and writes it to bench/RESULTS.md.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._procs import BIN, PeakRss, free_port, rss_bytes, start, stop, wait_http

HERE = Path(__file__).resolve().parent
PEER_REQUIREMENTS = ["mirrorneuron-api==1.1.0", "mirrorneuron-python-sdk==1.1.0"]
CONNECTIONS = 64
MB = 1024 * 1024
POST_MANIFEST = {
    "manifest_version": "1",
    "graph_id": "bench",
    "nodes": [{"node_id": "a", "agent_type": "sensor"}],
    "entrypoints": ["a"],
}


@dataclass
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    peak_rss_mb: float


@dataclass
class Row:
    name: str
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def best(self, who: str) -> Run | None:
        runs = self.runs.get(who)
        return max(runs, key=lambda r: r.requests_per_second) if runs else None


def _best(row: Row) -> Run:
    """Our best run of a route (every route is run, so there is one)."""
    run = row.best("ours")
    if run is None:
        raise SystemExit(f"no run of {row.name} for this gateway")
    return run


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        subprocess.run(["tools/ensure-packages.sh", "wrk:wrk"], cwd=HERE.parent, check=True)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed and could not be installed (apt-get install wrk)")
    return wrk


def install_peer(folder: Path) -> Path:
    if not (folder / "bin" / "mn-api").exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run(
            [str(folder / "bin" / "pip"), "install", "--quiet", *PEER_REQUIREMENTS], check=True
        )
    return folder / "bin" / "mn-api"


def wrk_run(wrk: str, url: str, seconds: int, pid: int, env: dict[str, str] | None = None) -> Run:
    command = [
        wrk,
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(HERE / "report.lua"),
        url,
    ]
    with PeakRss(pid) as watch:
        result = subprocess.run(
            command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
        )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(
        figures["requests"] / figures["seconds"],
        figures["p50_ms"],
        figures["p99_ms"],
        figures["non2xx"] + figures["socket_errors"],
        watch.peak / MB,
    )


def settle(base: str, within: float = 60.0) -> None:
    """Wait until a server has worked off what the previous run left it, so that no run
    pays for another's backlog."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        started = time.perf_counter()
        httpx.get(f"{base}/api/v1/health", timeout=within)
        if time.perf_counter() - started < 0.05:
            return
        time.sleep(0.5)


def read_history(url: str, pid: int) -> tuple[float, float, int]:
    """Seconds to read the whole answer, the server's peak RSS growth (MB), answer bytes."""
    with httpx.Client(timeout=600) as client, PeakRss(pid) as watch:
        baseline = watch.peak
        started = time.perf_counter()
        size = 0
        with client.stream("GET", url) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
        seconds = time.perf_counter() - started
    return seconds, (watch.peak - baseline) / MB, size


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds per route")
    parser.add_argument("--seed-jobs", type=int, default=50)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--keep-peer", action="store_true", help="keep the peer's venv")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    wrk = ensure_wrk()
    peer_dir = Path(tempfile.gettempdir()) / "mn-api-bench-peer"
    peer_bin = install_peer(peer_dir)
    work = Path(tempfile.mkdtemp(prefix="mn-api-bench-"))
    processes: list[subprocess.Popen] = []
    try:
        core_port = free_port()
        core = start(
            [
                str(BIN / "mn-fake-core"),
                "--port",
                str(core_port),
                "--step-ms",
                "50",
                "--seed-jobs",
                str(args.seed_jobs),
                "--seed-events",
                "1000",
                "--seed-history",
                str(args.history),
            ],
            ready_line="listening",
        )
        processes.append(core)
        target = f"127.0.0.1:{core_port}"
        servers = {}
        for who, command in (("ours", [str(BIN / "mn-api")]), ("peer", [str(peer_bin)])):
            port = free_port()
            env = {
                "MN_GRPC_TARGET": target,
                "MN_API_HOST": "127.0.0.1",
                "MN_API_PORT": str(port),
                "MN_API_LOG_PATH": str(work / f"{who}.log"),
                "MN_API_BUNDLE_DIR": str(work / f"{who}-bundles"),
                "MN_GRPC_TIMEOUT_SECONDS": "60",
                "HOME": str(work),
            }
            process = start(command, env=env)
            processes.append(process)
            servers[who] = (f"http://127.0.0.1:{port}", process)
        minimal_port = free_port()
        minimal = start(
            [
                str(BIN / "uvicorn"),
                "bench.minimal_app:app",
                "--port",
                str(minimal_port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env={"PYTHONPATH": str(HERE.parent)},
        )
        processes.append(minimal)
        for base, _ in servers.values():
            wait_http(f"{base}/api/v1/health")
        wait_http(f"http://127.0.0.1:{minimal_port}/")

        listing = httpx.get(f"{servers['ours'][0]}/api/v1/jobs", params={"limit": 100}).json()
        seeded = [j["job_id"] for j in listing["data"]]
        large, job = seeded[0], seeded[1]  # the history was seeded last, so it is listed first
        routes = [
            ("GET /health", "/api/v1/health", None),
            ("GET /jobs/{id}", f"/api/v1/jobs/{job}", None),
            ("GET /jobs?limit=20", "/api/v1/jobs?limit=20", None),
            ("GET /jobs/{id}/events (1,000 events)", f"/api/v1/jobs/{job}/events", None),
            ("GET /jobs/{id}/agent-graph (1,000 events)", f"/api/v1/jobs/{job}/agent-graph", None),
            (
                "POST /jobs",
                "/api/v1/jobs",
                {
                    "WRK_METHOD": "POST",
                    "WRK_BODY": json.dumps({"manifest_json": json.dumps(POST_MANIFEST)}),
                },
            ),
        ]
        # Ceilings and the long history first: submissions fill the core with new jobs,
        # and past 10,000 jobs it evicts the oldest finished ones, the seeded ones included.
        ceiling_http = wrk_run(wrk, f"http://127.0.0.1:{minimal_port}/", args.duration, minimal.pid)
        ceiling_core = _core_ceiling(target, job, args.duration, "getjob")
        ceiling_stream = _core_ceiling(target, job, args.duration, "stream")
        history = {}
        for who in ("ours", "peer"):
            base, process = servers[who]
            settle(base)
            idle = rss_bytes(process.pid) / MB
            seconds, growth, size = read_history(f"{base}/api/v1/jobs/{large}/events", process.pid)
            history[who] = (seconds, growth, size, idle)

        rows = []
        for name, path, env in routes:
            row = Row(name)
            for _ in range(args.rounds):
                for who in ("ours", "peer"):  # A B A B
                    base, process = servers[who]
                    settle(base)
                    row.runs.setdefault(who, []).append(
                        wrk_run(wrk, base + path, args.duration, process.pid, env)
                    )
            print(f"{name}: ours {row.best('ours')}, peer {row.best('peer')}", flush=True)
            rows.append(row)
        ceiling_submit = _core_ceiling(target, job, args.duration, "submit")
        report = _report(
            rows, ceiling_http, ceiling_core, ceiling_stream, ceiling_submit, history, args
        )
        print(report)
        Path(args.output).write_text(report)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep_peer:
            shutil.rmtree(peer_dir, ignore_errors=True)


def _core_ceiling(target: str, job: str, seconds: int, rpc: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.grpc_ceiling",
            target,
            job,
            "--seconds",
            str(seconds),
            "--concurrency",
            str(CONNECTIONS),
            "--rpc",
            rpc,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE.parent,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _report(
    rows: list[Row],
    ceiling_http: Run,
    ceiling_core: dict,
    ceiling_stream: dict,
    ceiling_submit: dict,
    history: dict,
    args: argparse.Namespace,
) -> str:
    lines = [
        "# Benchmark: this gateway against mirrorneuron-api 1.1.0",
        "",
        f"Machine: {machine()}.",
        f"Command: `make bench` (`python -m bench.compare --duration {args.duration} "
        f"--rounds {args.rounds}`). Both gateways run one worker in front of the same "
        f"mn-fake-core, driven by wrk with {CONNECTIONS} connections, alternating A B A B; "
        "each cell is the better of the rounds (by requests/s).",
        "",
        "| route | ours req/s | peer req/s | ours/peer | ours p50 / p99 (ms) | "
        "peer p50 / p99 (ms) | non-2xx ours / peer | peak RSS ours / peer (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, peer = row.best("ours"), row.best("peer")
        assert ours is not None and peer is not None
        ratio = (
            ours.requests_per_second / peer.requests_per_second
            if peer.requests_per_second
            else float("inf")
        )
        lines.append(
            f"| {row.name} | {ours.requests_per_second:,.0f} | {peer.requests_per_second:,.0f} "
            f"| {ratio:.1f}x | {ours.p50_ms:.1f} / {ours.p99_ms:.1f} | "
            f"{peer.p50_ms:.1f} / {peer.p99_ms:.1f} | {ours.non2xx} / {peer.non2xx} | "
            f"{ours.peak_rss_mb:.0f} / {peer.peak_rss_mb:.0f} |"
        )
    job_row = _best(next(r for r in rows if r.name == "GET /jobs/{id}"))
    lines += [
        "",
        "Ceilings measured in the same run:",
        "",
        f"- HTTP stack (bare ASGI app, uvicorn + uvloop + httptools, one worker): "
        f"{ceiling_http.requests_per_second:,.0f} req/s; GET /jobs/{{id}} reaches "
        f"{job_row.requests_per_second / ceiling_http.requests_per_second:.0%} of it.",
        f"- Core, GetJob from a tight grpc.aio client ({CONNECTIONS} concurrent calls): "
        f"{ceiling_core['calls_per_second']:,.0f} calls/s; GET /jobs/{{id}} reaches "
        f"{job_row.requests_per_second / ceiling_core['calls_per_second']:.0%} of it.",
        f"- Core, StreamEvents of the 1,000-event history: "
        f"{ceiling_stream['calls_per_second']:,.1f} full reads/s "
        f"({ceiling_stream['events_per_second']:,.0f} events/s); "
        + "; ".join(
            f"{row.name.split(' (')[0]} reaches "
            f"{_best(row).requests_per_second / ceiling_stream['calls_per_second']:.0%} of it"
            for row in rows
            if "1,000 events" in row.name
        )
        + ".",
    ]
    post = _best(next(r for r in rows if r.name == "POST /jobs"))
    lines.append(
        f"- Core, SubmitJob from a tight grpc.aio client: {ceiling_submit['calls_per_second']:,.0f}"
        f" calls/s; POST /jobs reaches "
        f"{post.requests_per_second / ceiling_submit['calls_per_second']:.0%} of it."
    )
    (o_s, o_g, o_b, o_idle), (p_s, p_g, p_b, p_idle) = history["ours"], history["peer"]
    lines += [
        "",
        f"Reading a {args.history:,}-event history in one GET /jobs/{{id}}/events:",
        "",
        "| | time (s) | peak RSS growth (MB) | RSS before (MB) | answer (MB) |",
        "|---|---|---|---|---|",
        f"| ours | {o_s:.2f} | {o_g:.1f} | {o_idle:.0f} | {o_b / MB:.1f} |",
        f"| peer | {p_s:.2f} | {p_g:.1f} | {p_idle:.0f} | {p_b / MB:.1f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
