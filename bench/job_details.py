"""What one job's details cost the gateway, per call, side by side in one run.

    python -m bench.job_details [--calls 5000] [--events 1000]

Runs the GetJob use case in process, then serialises its answer as the HTTP route does,
for a finished job of `--events` events on the in-memory runtime, in three set-ups: a
1.2.31 core (which leaves `recent_events` empty) with the history journal filling them, the
same core without the journal (the events stay empty), and a 1.2.5 core, which sends them
itself. CPU is the process's own time over the calls. This is a benchmark, not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from mn_api.config import Settings
from mn_api.container import Running, build_container
from mn_api.embedded import Services

SETUPS = (
    ("1.2.31 core, journal fills recent_events", "1.2.31", 64),
    ("1.2.31 core, no journal (recent_events empty)", "1.2.31", 0),
    ("1.2.5 core, which sends recent_events", "1.2.5", 64),
)


async def _per_call(release: str, cache_mb: int, calls: int, events: int) -> tuple[float, int]:
    settings = Settings(
        runtime="memory", fake_core_release=release, history_cache_mb=cache_mb, fake_step_ms=0
    )
    container = build_container(settings)
    running = Running(container)
    await running.start()
    try:
        container.runtime().seed(1, events)
        services = Services.of(container)
        job_id = (await services.list_jobs(limit=1)).value["data"][0]["job_id"]
        size = 0
        for _ in range(200):  # warm: the journal's first read of the history is not measured
            size = len(orjson.dumps(await services.get_job(job_id)))
        started = time.process_time()
        for _ in range(calls):
            orjson.dumps(await services.get_job(job_id))
        return (time.process_time() - started) / calls * 1e6, size
    finally:
        await running.stop()


async def _run(calls: int, events: int) -> list[tuple[str, float, int]]:
    return [
        (label, *await _per_call(release, cache_mb, calls, events))
        for label, release, cache_mb in SETUPS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    rows = asyncio.run(_run(args.calls, args.events))
    baseline = rows[1][1]
    print("| set-up | CPU per call (µs) | vs no journal | answer (bytes) |")
    print("|---|---|---|---|")
    for label, micros, size in rows:
        print(f"| {label} | {micros:.1f} | {micros / baseline:.2f}x | {size:,} |")


if __name__ == "__main__":
    main()
