"""Drives a published mirrorneuron-python-sdk's own Client through job definitions, runs
and backups against a core (run by the SDK's venv):

python sdk_jobs_driver.py TARGET TOKEN   # prints what each call answered, as JSON

Only the SDK's public Client is used; nothing of it is copied.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MANIFEST = {
    "manifest_version": "1",
    "graph_id": "witness-stable",
    "daemon": True,
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor"},
    ],
    "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
    "entrypoints": ["router"],
    "contract": {
        "live_inputs": {
            "topic": {
                "entrypoint": "router",
                "message_type": "task",
                "schema": {"type": "object", "required": ["text"]},
            }
        }
    },
}


def _refusal(call: Any) -> dict[str, str] | None:
    import grpc

    try:
        call()
    except grpc.RpcError as err:
        return {"code": err.code().name, "details": err.details()}
    return None


def _wait(client: Any, run_id: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + 20
    while (status := json.loads(client.get_run(run_id))["status"]) not in wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_id} stayed {status}")
        time.sleep(0.02)
    return status


def scenario(target: str, token: str) -> dict[str, Any]:
    from mn_sdk.client import Client

    client = Client(target=target, timeout=10, auth_token=token)
    out: dict[str, Any] = {}
    manifest = json.dumps(MANIFEST)
    out["create"] = json.loads(
        client.create_stable_job(
            manifest,
            {"in/a.txt": b"alpha"},
            job_id="witness-stable",
            resolved_configuration={"llm": {"temperature": 0}},
        )
    )
    out["create_again"] = _refusal(
        lambda: client.create_stable_job(manifest, {}, job_id="witness-stable")
    )
    out["list"] = json.loads(client.list_stable_jobs())
    out["get"] = json.loads(client.get_stable_job("witness-stable"))
    out["update"] = json.loads(client.update_stable_job("witness-stable", {"job_name": "renamed"}))
    out["start"] = json.loads(
        client.start_run("witness-stable", run_id="witness-run-1", inputs={"topic": "x"})
    )
    _wait(client, "witness-run-1", {"running"})
    out["runs"] = json.loads(client.list_runs("witness-stable"))
    out["run"] = json.loads(client.get_run("witness-run-1"))
    out["input"] = json.loads(
        client.send_run_input("witness-run-1", "topic", {"text": "hi"}, idempotency_key="k-1")
    )
    out["input_refused"] = _refusal(
        lambda: client.send_run_input("witness-run-1", "topic", {}, idempotency_key="k-2")
    )
    out["v1_job"] = json.loads(client.get_job("witness-run-1"))["job"]["status"]
    out["pause"] = json.loads(client.pause_run("witness-run-1"))
    out["pause_again"] = _refusal(lambda: client.pause_run("witness-run-1"))
    backup_json, files = client.export_job_backup("witness-run-1")
    out["backup"] = json.loads(backup_json)
    out["backup_files"] = sorted(files)
    out["restore"] = json.loads(client.restore_job_backup(backup_json, files, run_id="again-1"))
    out["restore_refused"] = _refusal(lambda: client.restore_job_backup("{}", {}))
    out["resume"] = json.loads(client.resume_run("witness-run-1"))
    out["archive_live"] = _refusal(lambda: client.archive_stable_job("witness-stable"))
    out["cancel"] = json.loads(client.cancel_run("witness-run-1"))
    _wait(client, "witness-run-1", {"cancelled"})
    out["delete_unconfirmed"] = _refusal(lambda: client.delete_run("witness-run-1"))
    out["delete_run"] = json.loads(client.delete_run("witness-run-1", confirmed=True))
    out["reset"] = json.loads(client.reset_stable_job_data("witness-stable"))
    out["archive"] = json.loads(client.archive_stable_job("witness-stable"))
    out["start_archived"] = _refusal(lambda: client.start_run("witness-stable"))
    out["delete"] = json.loads(client.delete_stable_job("witness-stable", confirmed=True))
    out["get_deleted"] = _refusal(lambda: client.get_stable_job("witness-stable"))
    return out


if __name__ == "__main__":
    print(json.dumps(scenario(sys.argv[1], sys.argv[2])))
