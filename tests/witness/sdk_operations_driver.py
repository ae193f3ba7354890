"""Drives a published mirrorneuron-python-sdk's Client through operations and node
administration against a two-node core (run by the SDK's venv).

python sdk_operations_driver.py TARGET SECOND_TARGET TOKEN JOIN_TOKEN
    # prints what each call answered, as JSON

Only the SDK's public Client is used; nothing of it is copied.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"


def _manifest() -> str:
    return json.dumps(
        {
            "manifest_version": "1",
            "graph_id": "witness-service",
            "daemon": True,
            "policies": {"job_type": "service", "recovery_mode": "cluster_recover"},
            "nodes": [
                {"node_id": "router", "agent_type": "router"},
                {"node_id": "worker", "agent_type": "executor"},
            ],
            "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
            "entrypoints": ["router"],
        }
    )


def _refusal(call: Any) -> dict[str, str] | None:
    import grpc

    try:
        call()
    except grpc.RpcError as err:
        return {"code": err.code().name, "details": err.details()}
    return None


def _events(client: Any, operation_id: str, **options: Any) -> list[dict[str, Any]]:
    stream = client.stream_operation_events(operation_id, timeout=20, **options)
    return [json.loads(raw) for raw in stream]


def _ended(client: Any, job_id: str) -> None:
    deadline = time.monotonic() + 20
    while json.loads(client.get_job(job_id))["job"]["status"] != "cancelled":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} was not cancelled")
        time.sleep(0.02)


def scenario(target: str, second: str, token: str, join_token: str) -> dict[str, Any]:
    from mn_sdk.client import Client

    client = Client(target=target, timeout=10, auth_token=token)
    out: dict[str, Any] = {}
    out["jobs"] = [client.submit_job(_manifest(), {}) for _ in range(2)]

    started = json.loads(client.start_operation("reconcile_node", {"node": MN2, "dry_run": True}))
    out["started"] = started
    operation_id = started["operation_id"]
    out["followed"] = _events(client, operation_id, follow=True, heartbeat_interval_ms=100)
    out["resumed"] = _events(client, operation_id, after_sequence=2)
    out["operation"] = json.loads(client.get_operation(operation_id))
    out["unknown_operation"] = _refusal(lambda: client.get_operation("op-missing"))
    out["bad_kind"] = _refusal(lambda: client.start_operation("defrag"))

    out["maintenance"] = json.loads(client.set_node_maintenance(MN2, True, reason="kernel"))
    out["drain_status"] = json.loads(client.get_node_drain_status(MN2))
    out["undrain"] = json.loads(client.cancel_node_drain(MN2, reason="done", mark_eligible=True))
    out["drain"] = json.loads(client.drain_node(MN2, reason="rack move", deadline_ms=30_000))
    out["summary_nodes"] = [
        {key: node.get(key) for key in ("name", "status", "scheduling_eligible")}
        for node in json.loads(client.get_system_summary())["nodes"]
    ]
    out["undrain_again"] = json.loads(client.cancel_node_drain(MN2, mark_eligible=True))
    out["reconcile"] = json.loads(client.reconcile_node(MN1, reason="check", dry_run=True))

    # The second node, asked without credentials (as a joining node asks).
    remote = Client(target=second, timeout=10)
    out["handshake_refused"] = _refusal(lambda: remote.network_handshake("guess"))
    handshake = remote.network_handshake(
        join_token, node_name="mirror_neuron@127.0.0.9", node_info={"hostname": "box9"}
    )
    out["handshake"] = {k: v for k, v in handshake.items() if k != "node_info_json"}
    out["add_node"] = client.add_node(handshake["node_name"], join_token)
    out["add_unknown"] = _refusal(lambda: client.add_node("ghost@10.9.9.9", join_token))
    out["joining"] = json.loads(client.get_node_drain_status("mirror_neuron@127.0.0.9"))

    out["cancel_all"] = json.loads(client.cancel_all_jobs())
    for job_id in out["jobs"]:  # a cancel may queue the job's clean-up: it ends soon after
        _ended(client, job_id)
    out["cleared"] = client.clear_jobs()
    return out


if __name__ == "__main__":
    print(json.dumps(scenario(*sys.argv[1:5])))
