"""The same answers whether a job's history is kept in the gateway's journal or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import RuntimePort
from mn_api.config import Settings
from tests.support import asgi_client, pipeline_manifest

API = "/api/v1"
READS = [
    "/events",
    "/events?offset=2&limit=3",
    "/events?type=agent_message_received&offset=1&limit=2",
    "/events?tail=2",
    "/events?tail=1&type=dead_letter",
    "/graph",
    "/agent-graph",
    "/dead-letters",
    "/events/stream?follow=false",
    "/events/stream?follow=false&tail=3",
]


async def test_pages_graphs_dead_letters_and_streams_match_with_and_without_the_journal(
    settings_factory: Callable[..., Settings],
    gateway_runtime: RuntimePort,
    memory_runtime: InMemoryRuntime,
) -> None:
    manifest = pipeline_manifest(worker={"simulate": {"drop_first": 1}})
    manifest["initial_inputs"] = {"router": [{"n": n} for n in range(4)]}
    answers: dict[float, list[Any]] = {}
    job_id = ""
    for cache_mb in (64, 0):
        settings = settings_factory(history_cache_mb=cache_mb)
        async with asgi_client(settings, gateway_runtime, lifespan=True) as client:
            if not job_id:
                response = await client.post(f"{API}/jobs", json={"manifest": manifest})
                job_id = response.json()["job_id"]
                memory_runtime.run_until_idle()
            answers[cache_mb] = []
            for read in READS:
                response = await client.get(f"{API}/jobs/{job_id}{read}")
                assert response.status_code == 200, (read, response.text)
                body = response.text if "stream" in read else response.json()
                answers[cache_mb].append((read, body))
    assert answers[64] == answers[0]
    events = answers[0][0][1]["data"]
    assert [e["type"] for e in events].count("dead_letter") == 1
    assert answers[0][3][1]["offset"] == len(events) - 2
