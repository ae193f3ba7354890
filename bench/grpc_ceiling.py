"""The core's ceiling: a tight grpc.aio client calling the core directly, no gateway between.

    python -m bench.grpc_ceiling TARGET JOB_ID [--seconds 10] [--concurrency 64] [--rpc getjob]

Prints one JSON line: calls per second (for `stream`, full reads of the job's history per
second and the events per second they carry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

from mn_api.adapters.grpc.protos import (
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)

MANIFEST = json.dumps(
    {
        "manifest_version": "1",
        "graph_id": "bench",
        "nodes": [{"node_id": "a", "agent_type": "sensor"}],
        "entrypoints": ["a"],
    }
)


async def run(target: str, job_id: str, seconds: float, concurrency: int, rpc: str) -> dict:
    async with grpc.aio.insecure_channel(target) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        streams = observability_pb2_grpc.ObservabilityServiceStub(channel)
        calls = events = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal calls, events
            while time.perf_counter() < deadline:
                if rpc == "getjob":
                    await jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id))
                elif rpc == "submit":
                    await jobs.SubmitJob(job_pb2.SubmitJobRequest(manifest_json=MANIFEST))
                else:
                    request = observability_pb2.StreamEventsRequest(job_id=job_id)
                    async for _ in streams.StreamEvents(request):
                        events += 1
                calls += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"rpc": rpc, "calls_per_second": calls / elapsed, "events_per_second": events / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target")
    parser.add_argument("job_id")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rpc", choices=["getjob", "stream", "submit"], default="getjob")
    args = parser.parse_args()
    result = asyncio.run(run(args.target, args.job_id, args.seconds, args.concurrency, args.rpc))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
