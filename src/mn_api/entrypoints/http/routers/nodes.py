"""Node administration (the core's ClusterService, 1.2.5 and newer): reconcile and drain a
node (as operations on 1.2.31), cancel a drain, maintenance, and a node's drain status."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.responses import Response

from mn_api.domain.errors import NotSupportedError
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http.auth import authenticate
from mn_api.entrypoints.http.models._base import WholeNumber, whole_number
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import API_PREFIX, RUNTIME_ERRORS, problems
from mn_api.entrypoints.http.routers.operations import start_operation

CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"
DEFAULT_DEADLINE = "30m"
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "": 1}
# A duration: a whole number above 0 (nine digits at most) and its unit.
DURATION_PATTERN = r"^ *0*([1-9][0-9]{0,8}) *(ms|s|m|h|d)? *$"
_DURATION = re.compile(DURATION_PATTERN)
# A node's name as the core writes it (an Erlang node name): `name@host`.
NODE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@[A-Za-z0-9_.:\[\]-]{1,253}$"

router = APIRouter(
    prefix=API_PREFIX,
    tags=["nodes"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

NodeName = Annotated[
    str,
    Path(
        pattern=NODE_NAME_PATTERN,
        max_length=253,
        description="The node's name as the core writes it (`mirror_neuron@10.0.0.5`)",
        examples=["mn2@10.0.0.12"],
    ),
]
Reason = Annotated[str, Field(max_length=1024, description="Why, as the core records it")]


Port = Annotated[int, Field(ge=1, le=65535), BeforeValidator(whole_number)]
Milliseconds = Annotated[int, Field(ge=0, le=2**53), BeforeValidator(whole_number)]


class _Body(BaseModel):
    # Strict: each field only as the schema says it (no `true` for a number, no "yes" for
    # a boolean).
    model_config = ConfigDict(extra="forbid", strict=True)

    version: WholeNumber | None = Field(default=None, description="Accepted and ignored")


class ReconcileRequest(_Body):
    reason: Reason = ""
    dry_run: bool = Field(False, description="Say what would be done, and do nothing")


class DrainRequest(_Body):
    reason: Reason = ""
    deadline: str = Field(
        DEFAULT_DEADLINE,
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How long batch jobs may run on before they are moved: a number above 0 "
        "with ms, s, m, h or d (a bare number is milliseconds)",
        examples=["30m"],
    )
    deadline_ms: Milliseconds | None = Field(
        None, description="The deadline in milliseconds (wins over `deadline` when above 0)"
    )
    dry_run: bool = False
    ignore_system_jobs: bool = Field(True, description="Leave system and sysbatch jobs be")
    wait: bool = Field(
        False,
        description="Accepted for older clients and ignored: the answer is the operation as "
        "started; follow it with GET /operations/{operation_id}/events",
    )

    def milliseconds(self) -> int:
        if self.deadline_ms:
            return self.deadline_ms
        match = _DURATION.fullmatch(self.deadline)
        assert match is not None  # the field's pattern
        return int(match[1]) * _UNITS[match[2] or ""]


class UndrainRequest(_Body):
    reason: Reason = ""
    mark_eligible: bool = Field(
        False, description="Make the node schedulable again (else it stays in maintenance)"
    )


class MaintenanceRequest(_Body):
    reason: Reason = ""
    enabled: bool = Field(True, description="true (the default) puts the node in maintenance")


class NodeDocument(BaseModel):
    """The core's answer about the node: `node`, `status`, `scheduling_eligible`, and for
    maintenance, undrain and the drain status `maintenance`, `drain`, `reason` and
    `node_state` (the node's stored state). See docs/LATER_SERVICES.md."""

    model_config = ConfigDict(extra="allow")

    version: int = 1


class OperationOrResult(BaseModel):
    """The operation as started (1.2.31: `operation_id`, `kind`, `status`, `counters`...),
    or, on cores without operations (1.2.5), the core's result of the whole call
    (reconcile: `checked`, `recovered`, `paused`, `blocked`, `skipped`, `failed`, `jobs`;
    drain: `node`, `status`, `actions`, `counters`)."""

    model_config = ConfigDict(extra="allow")

    version: int = 1


async def _operation_or_call(
    core: deps.CoreServices, kind: str, options: dict[str, Any], method: str
) -> Any:
    """The operation of `kind`, or, where the core has no operations, `method` itself."""
    try:
        return await start_operation(core, kind, options)
    except NotSupportedError:
        return await core.call(CLUSTER + method, options, kind="node")


@router.post(
    "/nodes/{node_name}/reconcile",
    response_model=OperationOrResult,
    responses=problems(400, 422),
    summary="Reconcile a node's jobs",
)
async def reconcile_node(
    node_name: NodeName,
    core: deps.CoreServices,
    body: Annotated[ReconcileRequest | None, Body()] = None,
) -> Response:
    """Moves the node's jobs elsewhere as a lost node's would be (jobs not configured for
    cluster recovery are paused for review). A reconcile_node operation on 1.2.31; on
    1.2.5, ReconcileNode answers when done. 501 `not_supported` on older cores."""
    request = body or ReconcileRequest()
    options = {"node_name": node_name, "reason": request.reason, "dry_run": request.dry_run}
    return json_response(await _operation_or_call(core, "reconcile_node", options, "ReconcileNode"))


@router.post(
    "/nodes/{node_name}/drain",
    response_model=OperationOrResult,
    responses=problems(400, 422),
    summary="Drain a node",
)
async def drain_node(
    node_name: NodeName,
    core: deps.CoreServices,
    body: Annotated[DrainRequest | None, Body()] = None,
) -> Response:
    """Takes new work off the node and moves its jobs away (batch jobs may finish until
    the deadline); the node goes into maintenance once it is empty. A drain_node operation
    on 1.2.31; on 1.2.5, DrainNode answers when done. 501 `not_supported` on older cores."""
    request = body or DrainRequest()
    options = {
        "node_name": node_name,
        "reason": request.reason,
        "deadline_ms": request.milliseconds(),
        "dry_run": request.dry_run,
        "ignore_system_jobs": request.ignore_system_jobs,
    }
    return json_response(await _operation_or_call(core, "drain_node", options, "DrainNode"))


@router.post(
    "/nodes/{node_name}/undrain",
    response_model=NodeDocument,
    responses=problems(400, 422),
    summary="Cancel a node's drain",
)
async def undrain_node(
    node_name: NodeName,
    core: deps.CoreServices,
    body: Annotated[UndrainRequest | None, Body()] = None,
) -> Response:
    """CancelNodeDrain on the core: the node stays in maintenance unless `mark_eligible`."""
    request = body or UndrainRequest()
    fields = {
        "node_name": node_name,
        "reason": request.reason,
        "mark_eligible": request.mark_eligible,
    }
    return json_response(await core.call(CLUSTER + "CancelNodeDrain", fields, kind="node"))


@router.post(
    "/nodes/{node_name}/maintenance",
    response_model=NodeDocument,
    responses=problems(400, 422),
    summary="Put a node in maintenance, or take it out",
)
async def node_maintenance(
    node_name: NodeName,
    core: deps.CoreServices,
    body: Annotated[MaintenanceRequest | None, Body()] = None,
) -> Response:
    """SetNodeMaintenance on the core; an empty request turns maintenance on."""
    request = body or MaintenanceRequest()
    fields = {"node_name": node_name, "enabled": request.enabled, "reason": request.reason}
    return json_response(await core.call(CLUSTER + "SetNodeMaintenance", fields, kind="node"))


@router.get(
    "/nodes/{node_name}/drain",
    response_model=NodeDocument,
    responses=problems(422),
    summary="A node's drain and maintenance status",
)
async def node_drain_status(node_name: NodeName, core: deps.CoreServices) -> Response:
    """GetNodeDrainStatus on the core (never 404: a node it knows nothing of is
    `status: unknown`)."""
    fields = {"node_name": node_name}
    return json_response(await core.call(CLUSTER + "GetNodeDrainStatus", fields, kind="node"))


# A host name, an IPv4 address, or an IPv6 address (bare or in brackets); never a URL.
HOST_PATTERN = (
    r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]+|[A-Za-z0-9_][A-Za-z0-9_.-]{0,252})$"
)


class JoinRequest(_Body):
    host: str = Field(
        pattern=HOST_PATTERN,
        max_length=253,
        description="The host of the node to join (its name or IP address). The gateway "
        "contacts only the hosts MN_API_CLUSTER_JOIN_HOSTS names (by default, its own "
        "core's): any other is 403 `join_host_not_allowed`",
        examples=["10.0.0.12"],
    )
    token: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[!-~]+$",
        description="The join token that node expects (its MN_NETWORK_JOIN_TOKEN): printable "
        "ASCII without spaces",
    )
    grpc_port: Port | None = Field(None, description="Its gRPC port; else 55051, then 50051")


class JoinAnswer(BaseModel):
    """`ok`, `host`, `node_name` (the node as it named itself), `status` (AddNode's word,
    `connected`), `message`, and `handshake`: what the node said of itself that is not a
    secret (`node_name`, `runtime_mode`, `grpc_host`, `grpc_port`, `cluster_nodes`,
    `network_only`)."""

    model_config = ConfigDict(extra="allow")

    version: int = 1


async def _join(use_case: deps.JoinNode, body: JoinRequest) -> Response:
    answer = await use_case(body.host, body.token, body.grpc_port)
    return json_response(answer)


_JOIN_DOC = (
    "Asks the node at `host` to take part (NetworkHandshake there, with `token`; one "
    "call per port, 10 s each at most, nothing of its secrets kept or passed on), then "
    "has the core connect to it (AddNode). 403 `join_host_not_allowed` for a host the "
    "gateway may not contact, 403 `join_refused` when the node refuses the token, 502 "
    "`remote_core_unavailable` when it cannot be reached; 501 `not_supported` on cores "
    "without AddNode (1.1, d26bef71)."
)


@router.post(
    "/system/cluster/nodes:add",
    response_model=JoinAnswer,
    responses=problems(400, 403, 422),
    summary="Add another core's node to the cluster",
    description=_JOIN_DOC,
)
async def add_node(use_case: deps.JoinNode, body: Annotated[JoinRequest, Body()]) -> Response:
    return await _join(use_case, body)


@router.post(
    "/system/cluster/nodes:join",
    response_model=JoinAnswer,
    responses=problems(400, 403, 422),
    summary="Add another core's node to the cluster (the same as nodes:add)",
    description=_JOIN_DOC,
)
async def join_node(use_case: deps.JoinNode, body: Annotated[JoinRequest, Body()]) -> Response:
    return await _join(use_case, body)
