"""Peak memory and time of the gateway while a client reads a 100,000-event history.

    python -m bench.history_memory [--events 100000]

Runs the gateway once on the in-memory runtime and once in front of mn-fake-core (gRPC),
reads the job's whole history (`/events`), its graph and its dead letters, and reports
the gateway process's resident memory growth over its size just before each read. This is
a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import httpx

from bench._procs import BIN, PeakRss, free_port, rss_bytes, start, stop, wait_http

MB = 1024 * 1024


def _large_manifest(events: int) -> dict:
    return {
        "manifest_version": "1",
        "graph_id": "large",
        "nodes": [{"node_id": "sink", "agent_type": "aggregator"}],
        "entrypoints": ["sink"],
        "initial_inputs": {"sink": [{"n": i} for i in range(events - 5)]},
    }


def _measure(base: str, pid: int, job_id: str, route: str) -> tuple[float, float, int]:
    url = f"{base}/api/v1/jobs/{job_id}{route}"
    with httpx.Client(timeout=300) as client:
        client.get(url, params={"limit": 1} if route == "/events" else None)  # warm up
        with PeakRss(pid) as watch:
            baseline = watch.peak
            started = time.perf_counter()
            size = 0
            with client.stream("GET", url) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    size += len(chunk)
            seconds = time.perf_counter() - started
    return seconds, (watch.peak - baseline) / MB, size


def run(events: int) -> list[tuple[str, str, float, float, float, int]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("memory", "grpc"):
            core = None
            port = free_port()
            env = {
                "MN_API_HOST": "127.0.0.1",
                "MN_API_PORT": str(port),
                "MN_API_LOG_PATH": f"{tmp}/{mode}.log",
                "MN_API_BUNDLE_DIR": f"{tmp}/b",
                "MN_FAKE_STEP_MS": "1",
                "MN_LOG_LEVEL": "WARNING",
            }
            if mode == "grpc":
                core_port = free_port()
                core = start(
                    [
                        str(BIN / "mn-fake-core"),
                        "--port",
                        str(core_port),
                        "--seed-jobs",
                        "1",
                        "--seed-events",
                        str(events),
                    ],
                    ready_line="listening",
                )
                env.update(
                    {
                        "MN_RUNTIME": "grpc",
                        "MN_GRPC_TARGET": f"127.0.0.1:{core_port}",
                        "MN_GRPC_TIMEOUT_SECONDS": "60",
                    }
                )
            else:
                env["MN_RUNTIME"] = "memory"
            gateway = start([str(BIN / "mn-api")], env=env)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{base}/api/v1/health")
                job_id = _prepare(base, mode, events)
                idle = rss_bytes(gateway.pid) / MB
                for route in ("/events", "/graph", "/dead-letters"):
                    seconds, growth, size = _measure(base, gateway.pid, job_id, route)
                    rows.append((mode, route, idle, growth, seconds, size))
            finally:
                stop(gateway)
                if core is not None:
                    stop(core)
    return rows


def _prepare(base: str, mode: str, events: int) -> str:
    with httpx.Client(base_url=f"{base}/api/v1", timeout=120) as client:
        if mode == "grpc":
            return client.get("/jobs", params={"limit": 1}).json()["data"][0]["job_id"]
        job_id = client.post("/jobs", json={"manifest": _large_manifest(events)}).json()["id"]
        while client.get(f"/jobs/{job_id}").json()["job"]["status"] != "completed":
            time.sleep(0.2)
        return job_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    rows = run(args.events)
    print(f"Reading a {args.events:,}-event history (gateway process, one worker)\n")
    print("| runtime | route | RSS before (MB) | peak RSS growth (MB) | time (s) | answer (MB) |")
    print("|---|---|---|---|---|---|")
    for mode, route, idle, growth, seconds, size in rows:
        print(f"| {mode} | {route} | {idle:.1f} | {growth:.1f} | {seconds:.2f} | {size / MB:.1f} |")


if __name__ == "__main__":
    main()
