"""The operator routes' answers: nodes, the runtime's status, health and a doctor's findings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mn_api.entrypoints.http.models._base import Open, optional
from mn_api.entrypoints.http.models.system import ClusterNode


class NodeList(BaseModel):
    nodes: list[ClusterNode] = Field(
        description="The members, then the nodes that left the cluster (`status: lost`)"
    )


class LostNode(Open):
    name: str
    last_seen_at: str
    lost_at: str = optional()
    executor_capacity: int


class RuntimeNodes(BaseModel):
    total: int
    names: list[str]
    lost: list[LostNode] = optional("Nodes that left the cluster, while they are missed")


class RuntimeExecutors(BaseModel):
    capacity: int
    available: int
    lost_capacity: int = optional("The executor slots of the lost nodes")


class RuntimeJobs(BaseModel):
    total: int
    by_status: dict[str, int]


class RuntimeStatus(BaseModel):
    status: Literal["ok", "degraded", "no_nodes"]
    nodes: RuntimeNodes
    executors: RuntimeExecutors
    jobs: RuntimeJobs


class RuntimeHealth(BaseModel):
    status: Literal["ok"]
    latency_ms: float


class DoctorCheck(Open):
    id: str = Field(examples=["runtime", "shared_state", "nodes", "executors"])
    ok: bool
    message: str = optional("The finding, or why the check failed")


class DoctorReport(BaseModel):
    status: Literal["ok", "degraded"]
    checks: list[DoctorCheck]


class NodeRemoval(BaseModel):
    node_name: str
    status: str = Field(description="The core's word for it", examples=["removed"])


class ModelList(BaseModel):
    models: list[dict[str, Any]]
    runner_available: bool
    warnings: list[str]
