"""Drives a published mirrorneuron-python-sdk's own Client against a core (run by its venv).

python sdk_driver.py scenario TARGET TOKEN   # prints what each call answered, as JSON
python sdk_driver.py descriptors PACKAGE     # prints the descriptors of PACKAGE's
                                             # job/cluster/observability modules, as JSON

Only the SDK's public classes and generated stubs are used; nothing of them is copied.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _manifest(graph_id: str, *, delay_ms: int = 0, daemon: bool = False) -> str:
    worker: dict[str, Any] = {"node_id": "worker", "agent_type": "executor"}
    if delay_ms:
        worker["config"] = {"simulate": {"delay_ms": delay_ms}}
    return json.dumps(
        {
            "manifest_version": "1",
            "graph_id": graph_id,
            "daemon": daemon,
            "nodes": [{"node_id": "router", "agent_type": "router"}, worker],
            "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
            "entrypoints": ["router"],
        }
    )


def _status(client: Any, job_id: str) -> str:
    return json.loads(client.get_job(job_id))["job"]["status"]


def _wait(client: Any, job_id: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + 20
    while (status := _status(client, job_id)) not in wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} stayed {status}")
        time.sleep(0.02)
    return status


def _refusal(call: Any) -> dict[str, str] | None:
    import grpc

    try:
        call()
    except grpc.RpcError as err:
        return {"code": err.code().name, "details": err.details()}
    return None


def scenario(target: str, token: str) -> dict[str, Any]:
    import inspect

    from mn_sdk.client import Client

    client = Client(target=target, timeout=10, auth_token=token)
    out: dict[str, Any] = {}
    daemon = client.submit_job(_manifest("witness-daemon", daemon=True), {"in/a.txt": b"x"})
    out["job_id"] = daemon
    out["get_unknown"] = client.get_job("ghost-1-000000000000")
    out["pause_pending"] = _refusal(lambda: client.pause_job(daemon))
    _wait(client, daemon, {"running"})
    out["listed"] = [j["job_id"] for j in json.loads(client.list_jobs())["data"]]
    out["pause"] = client.pause_job(daemon)
    out["resume"] = client.resume_job(daemon)
    out["resume_running"] = _refusal(lambda: client.resume_job(daemon)) or "ok"
    out["cancel"] = client.cancel_job(daemon)
    _wait(client, daemon, {"cancelled"})
    out["cancel_again"] = _refusal(lambda: client.cancel_job(daemon)) or "ok"
    out["cancel_unknown"] = _refusal(lambda: client.cancel_job("ghost-1-000000000000"))

    quick = client.submit_job(_manifest("witness", delay_ms=50), {})
    follows = "follow" in inspect.signature(client.stream_events).parameters
    if follows:
        stream = client.stream_events(quick, follow=True, heartbeat_interval_ms=20, timeout=20)
    else:
        _wait(client, quick, {"completed"})
        stream = client.stream_events(quick)
    out["streamed"] = [json.loads(raw)["type"] for raw in stream]
    out["details"] = json.loads(client.get_job(quick))
    out["summary"] = json.loads(client.get_system_summary())
    out["cleared"] = client.clear_jobs()
    node = out["summary"]["nodes"][0]["name"]
    out["remove_node"] = client.remove_node(node)
    if hasattr(client, "cancel_all_jobs"):
        client.submit_job(_manifest("witness-daemon", daemon=True), {})
        out["cancel_all"] = json.loads(client.cancel_all_jobs())
    bad = '{"graph_id": "x", "nodes": []}'
    out["bad_manifest"] = _refusal(lambda: client.submit_job(bad, {}))
    return out


def descriptors(package: str) -> dict[str, Any]:
    import importlib

    from google.protobuf import descriptor_pb2, json_format

    found: dict[str, Any] = {}
    for name in ("job_pb2", "cluster_pb2", "observability_pb2"):
        module = importlib.import_module(f"{package}.{name}")
        for name, message in module.DESCRIPTOR.message_types_by_name.items():
            proto = descriptor_pb2.DescriptorProto()
            message.CopyToProto(proto)
            found[f"{module.DESCRIPTOR.package}.{name}"] = json_format.MessageToDict(proto)
        for name, service in module.DESCRIPTOR.services_by_name.items():
            found[f"{module.DESCRIPTOR.package}.{name}"] = sorted(
                [m.name, m.input_type.name, m.output_type.name] for m in service.methods
            )
    return found


if __name__ == "__main__":
    mode = sys.argv[1]
    result = scenario(sys.argv[2], sys.argv[3]) if mode == "scenario" else descriptors(sys.argv[2])
    print(json.dumps(result))
