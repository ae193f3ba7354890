"""TopologyStore: one contract, for SQLite and on every Redis deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from mn_api.adapters.topologies.redis import RedisTopologyStore
from mn_api.adapters.topologies.sqlite import SqliteTopologyStore
from mn_api.application.ports import TopologyStore
from tests.contract.conftest import REDIS_KINDS, redis_client
from tests.support import pipeline_manifest


@pytest.fixture(params=["sqlite", *REDIS_KINDS])
def topologies(request: pytest.FixtureRequest, tmp_path: Path) -> TopologyStore:
    if request.param == "sqlite":
        return SqliteTopologyStore(tmp_path / "state.sqlite3", ttl_seconds=60)
    return RedisTopologyStore(redis_client(request, request.param), ttl_seconds=60)


async def test_a_kept_topology_loads_back_and_can_be_forgotten(topologies: TopologyStore) -> None:
    await topologies.save("job-1", orjson.dumps(pipeline_manifest()).decode())
    kept = await topologies.load("job-1")
    assert kept is not None
    assert [n["node_id"] for n in kept["nodes"]] == ["router", "worker", "collect"]
    assert {(e["from_node"], e["to_node"]) for e in kept["edges"]} == {
        ("router", "worker"),
        ("worker", "collect"),
    }
    assert kept["entrypoints"] == ["router"]
    await topologies.forget("job-1")
    assert await topologies.load("job-1") is None
    assert await topologies.load("never-kept") is None


async def test_many_topologies_are_kept_at_once(topologies: TopologyStore) -> None:
    # Job ids spread over every slot of a cluster: one write touches every primary.
    blobs = [(f"job-{i}", orjson.dumps({"nodes": [], "edges": [], "n": i})) for i in range(60)]
    await topologies.save_many(blobs)
    loaded = await asyncio.gather(*(topologies.load(job) for job, _ in blobs))
    assert [t["n"] if t else None for t in loaded] == list(range(60))
