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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._procs import BIN, PeakRss, free_port, rss_bytes, start, stop, wait_http

HERE = Path(__file__).resolve().parent
PEER_REQUIREMENTS = ["mirrorneuron-api==1.1.0", "mirrorneuron-python-sdk==1.1.0"]
CONNECTIONS = 64
MB = 1024 * 1024
# What the bare forwarder answers (it has no agent graph: that one is compared with our
# own listing of the same history).
FLOOR_ROUTES = frozenset(
    {
        "GET /health",
        "GET /jobs/{id}",
        "GET /jobs?limit=20",
        "GET /jobs/{id}/events (1,000 events)",
        "POST /jobs",
    }
)
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
    # The server's CPU time (user + system, from /proc) per request answered, in µs.
    cpu_us: float = 0.0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (its threads included), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        cpu_before = cpu_seconds(pid)
        result = subprocess.run(
            command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
        )
        cpu = cpu_seconds(pid) - cpu_before
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(
        figures["requests"] / figures["seconds"],
        figures["p50_ms"],
        figures["p99_ms"],
        figures["non2xx"] + figures["socket_errors"],
        watch.peak / MB,
        cpu * 1e6 / max(figures["requests"], 1),
    )


def gateway_env(target: str, port: int, files: Path) -> dict[str, str]:
    """A benchmarked gateway's settings: the core at `target`, its files under `files`."""
    return {
        "MN_GRPC_TARGET": target,
        "MN_API_HOST": "127.0.0.1",
        "MN_API_PORT": str(port),
        "MN_API_LOG_PATH": str(files / "api.log"),
        "MN_API_BUNDLE_DIR": str(files / "bundles"),
        "MN_GRPC_TIMEOUT_SECONDS": "60",
        "HOME": str(files.parent),
    }


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
    parser.add_argument(
        "--without-peer", action="store_true", help="only this gateway and the floor (faster)"
    )
    parser.add_argument("--only", default="", help="run only routes whose name holds this")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    wrk = ensure_wrk()
    peer_dir = Path(tempfile.gettempdir()) / "mn-api-bench-peer"
    contestants = ["ours", "floor"] if args.without_peer else ["ours", "floor", "peer"]
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
        commands = {"ours": [str(BIN / "mn-api")]}
        if not args.without_peer:
            commands["peer"] = [str(install_peer(peer_dir))]
        for who, command in commands.items():
            port = free_port()
            process = start(command, env=gateway_env(target, port, work / who))
            processes.append(process)
            servers[who] = (f"http://127.0.0.1:{port}", process)
        floor_port = free_port()
        floor = bare_app("bench.forwarder:app", floor_port, MN_GRPC_TARGET=target)
        processes.append(floor)
        servers["floor"] = (f"http://127.0.0.1:{floor_port}", floor)
        minimal_port = free_port()
        minimal = bare_app("bench.minimal_app:app", minimal_port)
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
        routes = [r for r in routes if args.only in r[0]]
        history = {}
        for who in [c for c in contestants if c != "floor"]:
            base, process = servers[who]
            settle(base)
            idle = rss_bytes(process.pid) / MB
            seconds, growth, size = read_history(f"{base}/api/v1/jobs/{large}/events", process.pid)
            history[who] = (seconds, growth, size, idle)

        rows = []
        for name, path, env in routes:
            row = Row(name)
            for _ in range(args.rounds):
                for who in contestants:  # A B C A B C
                    if who == "floor" and name not in FLOOR_ROUTES:
                        continue
                    base, process = servers[who]
                    settle(base)
                    row.runs.setdefault(who, []).append(
                        wrk_run(wrk, base + path, args.duration, process.pid, env)
                    )
            print(
                f"{name}: " + ", ".join(f"{who} {row.best(who)}" for who in contestants),
                flush=True,
            )
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


def bare_app(app: str, port: int, **env: str) -> subprocess.Popen:
    """A bare ASGI app on the same server stack as the gateways (uvicorn, uvloop, httptools)."""
    return start(
        [
            str(BIN / "uvicorn"),
            app,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={"PYTHONPATH": str(HERE.parent), **env},
    )


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


def _cell(run: Run | None, show: Callable[[Run], str]) -> str:
    return show(run) if run is not None else "-"


def _cpu(run: Run) -> str:
    return f"{run.cpu_us:,.0f}"


def _rate(run: Run) -> str:
    return f"{run.requests_per_second:,.0f}"


def _latency(run: Run) -> str:
    return f"{run.p50_ms:.1f} / {run.p99_ms:.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _report(
    rows: list[Row],
    ceiling_http: Run,
    ceiling_core: dict,
    ceiling_stream: dict,
    ceiling_submit: dict,
    history: dict,
    args: argparse.Namespace,
) -> str:
    peer = not args.without_peer
    lines = [
        "# Benchmark: this gateway, the bare forwarder"
        + (" and mirrorneuron-api 1.1.0" if peer else ""),
        "",
        f"Machine: {machine()}.",
        f"Command: `make bench` (`python -m bench.compare --duration {args.duration} "
        f"--rounds {args.rounds}`). Every server runs one worker in front of the same "
        f"mn-fake-core, driven by wrk with {CONNECTIONS} connections, in turn; each cell is "
        "the better of the rounds (by requests/s). The floor is `bench/forwarder.py`: a bare "
        "ASGI app on uvicorn + uvloop + httptools that forwards each request over one "
        "grpc.aio channel and hands the core's bytes back. CPU is the server's user + system "
        "time from /proc over the run, divided by the requests it answered.",
        "",
        "## CPU per request",
        "",
        "| route | ours µs | floor µs | ours/floor | target |" + (" peer µs |" if peer else ""),
        "|---|---|---|---|---|" + ("---|" if peer else ""),
    ]
    listing = next((r for r in rows if r.name.startswith("GET /jobs/{id}/events")), None)
    for row in rows:
        ours, floor, other = row.best("ours"), row.best("floor"), row.best("peer")
        assert ours is not None
        if row.name.startswith("GET /jobs/{id}/agent-graph") and listing is not None:
            base = listing.best("ours")
            ratio = _ratio(ours.cpu_us, base.cpu_us) + " of our listing" if base else "-"
            target = "1.5x our listing"
        else:
            ratio = _ratio(ours.cpu_us, floor.cpu_us) if floor else "-"
            target = {"GET /health": "-"}.get(row.name, "1.5x")
            if "events" in row.name:
                target = "1.2x"
        line = f"| {row.name} | {ours.cpu_us:,.0f} | {_cell(floor, _cpu)} | {ratio} | {target} |"
        if peer:
            line += f" {_cell(other, _cpu)} |"
        lines.append(line)
    lines += [
        "",
        "## Throughput and latency",
        "",
        "| route | ours req/s | floor req/s | ours p50 / p99 (ms) | non-2xx | peak RSS (MB) |"
        + (" peer req/s | ours/peer | peer p50 / p99 (ms) |" if peer else ""),
        "|---|---|---|---|---|---|" + ("---|---|---|" if peer else ""),
    ]
    for row in rows:
        ours, floor, other = row.best("ours"), row.best("floor"), row.best("peer")
        assert ours is not None
        line = (
            f"| {row.name} | {ours.requests_per_second:,.0f} | {_cell(floor, _rate)} | "
            f"{_latency(ours)} | {ours.non2xx} | {ours.peak_rss_mb:.0f} |"
        )
        if peer:
            versus = _ratio(ours.requests_per_second, other.requests_per_second) if other else "-"
            line += f" {_cell(other, _rate)} | {versus} | {_cell(other, _latency)} |"
        lines.append(line)
    job_rows = [r for r in rows if r.name == "GET /jobs/{id}"]
    lines += ["", "Ceilings measured in the same run:", ""]
    if job_rows:
        job_row = _best(job_rows[0])
        lines += [
            f"- HTTP stack (bare ASGI app, uvicorn + uvloop + httptools, one worker): "
            f"{ceiling_http.requests_per_second:,.0f} req/s; GET /jobs/{{id}} reaches "
            f"{job_row.requests_per_second / ceiling_http.requests_per_second:.0%} of it.",
            f"- Core, GetJob from a tight grpc.aio client ({CONNECTIONS} concurrent calls): "
            f"{ceiling_core['calls_per_second']:,.0f} calls/s; GET /jobs/{{id}} reaches "
            f"{job_row.requests_per_second / ceiling_core['calls_per_second']:.0%} of it.",
        ]
    streamed = [r for r in rows if "1,000 events" in r.name]
    lines.append(
        f"- Core, StreamEvents of the 1,000-event history: "
        f"{ceiling_stream['calls_per_second']:,.1f} full reads/s "
        f"({ceiling_stream['events_per_second']:,.0f} events/s)"
        + "".join(
            f"; {row.name.split(' (')[0]} reaches "
            f"{_best(row).requests_per_second / ceiling_stream['calls_per_second']:.0%} of it"
            for row in streamed
        )
        + "."
    )
    posts = [r for r in rows if r.name == "POST /jobs"]
    if posts:
        lines.append(
            f"- Core, SubmitJob from a tight grpc.aio client: "
            f"{ceiling_submit['calls_per_second']:,.0f} calls/s; POST /jobs reaches "
            f"{_best(posts[0]).requests_per_second / ceiling_submit['calls_per_second']:.0%} of it."
        )
    lines += [
        "",
        f"Reading a {args.history:,}-event history in one GET /jobs/{{id}}/events:",
        "",
        "| | time (s) | peak RSS growth (MB) | RSS before (MB) | answer (MB) |",
        "|---|---|---|---|---|",
    ]
    for who, (seconds, growth, size, idle) in history.items():
        lines.append(f"| {who} | {seconds:.2f} | {growth:.1f} | {idle:.0f} | {size / MB:.1f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
