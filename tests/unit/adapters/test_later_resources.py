"""The simulated cluster resources (ClusterService.GetResource and SetResource, 1.2.5 and
newer): the document's hardware, totals and per node alike, and the limits on it."""

from __future__ import annotations

import orjson

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services._base import CLUSTER
from tests.support import FakeClock


async def test_each_node_has_the_hardware_keys_of_the_totals() -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock(), release="1.2.31")
    answer = await runtime.call_service(CLUSTER + "GetResource", {"version": 1})
    document = orjson.loads(answer["resource_json"])
    totals = document["totals"]
    assert totals["gpu_memory_total_mb"] == 0 and totals["gpu_memory_free_gb"] == 0
    for node in document["nodes"]:
        assert totals.keys() <= node.keys(), sorted(totals.keys() - node.keys())
        assert node["gpu_memory_total_mb"] == node["gpu_memory_free_mb"] == 0
    assert document["combined"] == totals


async def test_limits_scale_what_is_usable() -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock(), release="1.2.31")
    request = {"resource_json": '{"CPU": "50", "memory": 25}', "version": 1}
    answer = await runtime.call_service(CLUSTER + "SetResource", request)
    document = orjson.loads(answer["resource_json"])
    assert document["limits"] == {"cpu": 50, "gpu": 100, "memory": 25, "disk": 100}
    totals, usable = document["totals"], document["usable"]
    assert usable["cpu_cores"] == totals["cpu_cores"] // 2
    assert usable["memory_gb"] == totals["memory_gb"] // 4
    assert usable["disk_gb"] == totals["disk_gb"]
