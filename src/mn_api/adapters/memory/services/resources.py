"""ClusterService.GetResource and SetResource: the share of each node's hardware the
cluster may schedule onto (1.2.5 and newer).

The document: `mode` (single_node or cluster), `node_count`, `limits` (percent per kind),
`totals` and `combined` (the members' hardware added up), `usable` (the totals scaled by
the limits), `nodes` (one entry per live member, with the same hardware keys as the totals:
the core's `lib/mirror_neuron/resource.ex`). Limits are 25, 50, 75 or 100 each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from mn_api.adapters.memory.services._base import (
    CLUSTER,
    Answer,
    Request,
    Streaming,
    Unary,
    dumps,
    invalid,
    versioned,
)

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

KINDS = ("cpu", "gpu", "memory", "disk")
SHARES = (25, 50, 75, 100)
# The simulated nodes' disks (the node model has no disk).
DISK_GB = 512
GPU_MEMORY = (
    "gpu_memory_total_mb",
    "gpu_memory_free_mb",
    "gpu_memory_total_gb",
    "gpu_memory_free_gb",
)


class Resources:
    name: ClassVar[str] = "resources"

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self._runtime = runtime
        self.limits: dict[str, int] = dict.fromkeys(KINDS, 100)

    def unary(self) -> Mapping[str, Unary]:
        return {CLUSTER + "GetResource": self.get, CLUSTER + "SetResource": self.set}

    def streaming(self) -> Mapping[str, Streaming]:
        return {}

    def reset(self) -> None:
        self.limits = dict.fromkeys(KINDS, 100)

    async def get(self, request: Request) -> Answer:
        return {"resource_json": dumps(self.document()), "version": 1}

    async def set(self, request: Request) -> Answer:
        text = request.get("resource_json", "")
        try:
            given = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise invalid(f"resource body must be valid JSON: {err}") from None
        if not isinstance(given, dict):
            raise invalid("resource limits must be an object")
        if not given:
            raise invalid("at least one of cpu, gpu, memory, or disk is required")
        wanted: dict[str, int] = {}
        for key, value in given.items():
            kind = str(key).lower()
            if kind not in KINDS:
                raise invalid("resource type must be one of cpu, gpu, memory, or disk")
            share = _share(value)
            if share is None:
                raise invalid(f"{kind} must be one of 25, 50, 75, 100")
            wanted[kind] = share
        self.limits.update(wanted)
        return {"resource_json": dumps(self.document()), "version": 1}

    def document(self) -> dict[str, Any]:
        runtime = self._runtime
        members = runtime.live_nodes
        node = runtime.node
        count = len(members)
        totals = {
            "cpu_cores": node.logical_processors * count,
            "gpu_count": node.gpus * count,
            **dict.fromkeys(GPU_MEMORY, 0),
            "memory_gb": node.memory_mb * count // 1024,
            "memory_total_gb": node.memory_mb * count // 1024,
            "memory_available_gb": node.memory_mb * count // 1024,
            "disk_gb": DISK_GB * count,
            "disk_available_gb": DISK_GB * count,
        }
        scale = {
            "cpu_cores": "cpu",
            "gpu_count": "gpu",
            "memory_gb": "memory",
            "memory_total_gb": "memory",
            "memory_available_gb": "memory",
            "disk_gb": "disk",
            "disk_available_gb": "disk",
        }
        usable = {
            key: (value * self.limits[scale[key]] // 100 if key in scale else value)
            for key, value in totals.items()
        }
        nodes = [
            {
                "name": name,
                "display_name": name.split("@", 1)[0],
                "hostname": name.split("@", 1)[-1],
                "platform": node.architecture,
                "self": index == 0,
                **_state(runtime, name),
                "cpu_cores": node.logical_processors,
                "gpu_count": node.gpus,
                "memory_gb": node.memory_mb // 1024,
                "memory_total_gb": node.memory_mb // 1024,
                "memory_available_gb": node.memory_mb // 1024,
                "disk_gb": DISK_GB,
                "disk_available_gb": DISK_GB,
                # The simulated nodes have no GPU memory (their GPUs are counted only).
                **dict.fromkeys(GPU_MEMORY, 0),
            }
            for index, name in enumerate(members)
        ]
        return versioned(
            {
                "mode": "single_node" if count == 1 else "cluster",
                "node_count": count,
                "limits": dict(self.limits),
                "totals": totals,
                "combined": dict(totals),
                "usable": usable,
                "nodes": nodes,
            }
        )


def _state(runtime: InMemoryRuntime, name: str) -> dict[str, Any]:
    """The node's `status` and `scheduling_eligible`, as node administration left them."""
    nodes = runtime.services.group("nodes")
    fields = nodes.summary_fields(name) if nodes is not None else {}
    return {
        "status": fields.get("status", "healthy"),
        "scheduling_eligible": fields.get("scheduling_eligible", True),
    }


def _share(value: Any) -> int | None:
    """25, 50, 75 or 100 given as a number or numeric text; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value in SHARES else None
