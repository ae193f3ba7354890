"""The gateway's memory for sizing a deployment: at rest, per job submitted, per open
event stream.

    python -m bench.sizing [--jobs 1000] [--streams 500]

Runs one gateway worker in front of mn-fake-core (the core's state lives there, as with a
real core), submits jobs and reads each once, then holds event streams open on a running
job, and reports the gateway process's resident memory after each step. This is a
benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import httpx

from bench._procs import BIN, free_port, rss_bytes, start, stop, wait_http

MB = 1024 * 1024


def _manifest(inputs: int, delay_ms: int) -> dict:
    return {
        "manifest_version": "1",
        "graph_id": "sizing",
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {
                "node_id": "worker",
                "agent_type": "executor",
                "type": "map",
                "config": {"simulate": {"delay_ms": delay_ms}},
            },
            {"node_id": "collect", "agent_type": "aggregator"},
        ],
        "edges": [
            {"from_node": "router", "to_node": "worker", "message_type": "task"},
            {"from_node": "worker", "to_node": "collect", "message_type": "result"},
        ],
        "entrypoints": ["router"],
        "initial_inputs": {"router": [{"n": i} for i in range(inputs)]},
    }


async def _submit(base: str, jobs: int) -> None:
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60) as client:
        for _ in range(jobs):
            job_id = (await client.post("/jobs", json={"manifest": _manifest(3, 0)})).json()[
                "job_id"
            ]
            await client.get(f"/jobs/{job_id}")


async def _hold_streams(base: str, pid: int, streams: int) -> float:
    """Resident memory (MB) with `streams` streams open, each past its first event."""
    limits = httpx.Limits(max_connections=streams + 8)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=120, limits=limits) as client:
        job_id = (await client.post("/jobs", json={"manifest": _manifest(200, 1000)})).json()[
            "job_id"
        ]
        opened = asyncio.Event()
        release = asyncio.Event()
        count = 0

        async def follow() -> None:
            nonlocal count
            async with client.stream("GET", f"/jobs/{job_id}/events/stream") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        break
                count += 1
                if count == streams:
                    opened.set()
                await release.wait()

        tasks = [asyncio.create_task(follow()) for _ in range(streams)]
        await asyncio.wait_for(opened.wait(), 120)
        await asyncio.sleep(1)
        rss = rss_bytes(pid) / MB
        release.set()
        await asyncio.gather(*tasks)
        await client.post(f"/jobs/{job_id}/cancel")
        return rss


def run(jobs: int, streams: int) -> list[tuple[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        core_port, port = free_port(), free_port()
        core = start(
            [str(BIN / "mn-fake-core"), "--port", str(core_port), "--step-ms", "5"],
            ready_line="listening",
        )
        gateway = start(
            [str(BIN / "mn-api")],
            env={
                "MN_API_HOST": "127.0.0.1",
                "MN_API_PORT": str(port),
                "MN_API_LOG_PATH": f"{tmp}/api.log",
                "MN_API_BUNDLE_DIR": f"{tmp}/bundles",
                "MN_RUNTIME": "grpc",
                "MN_GRPC_TARGET": f"127.0.0.1:{core_port}",
                "MN_LOG_LEVEL": "WARNING",
            },
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/api/v1/health")
            httpx.get(f"{base}/api/v1/jobs")  # the first request's imports
            time.sleep(1)
            rest = rss_bytes(gateway.pid) / MB
            rows.append(("at rest", rest))
            asyncio.run(_submit(base, jobs))
            after_jobs = rss_bytes(gateway.pid) / MB
            rows.append((f"after {jobs} jobs submitted and read", after_jobs))
            rows.append(("per job (KiB)", (after_jobs - rest) * 1024 / jobs))
            with_streams = asyncio.run(_hold_streams(base, gateway.pid, streams))
            rows.append((f"with {streams} event streams open", with_streams))
            rows.append(("per stream (KiB)", (with_streams - after_jobs) * 1024 / streams))
        finally:
            stop(gateway)
            stop(core)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=500)
    args = parser.parse_args()
    print("Gateway memory (one worker, in front of mn-fake-core), resident\n")
    for what, value in run(args.jobs, args.streams):
        print(f"{what:<40} {value:10.1f}")


if __name__ == "__main__":
    main()
