"""Drives the service registry methods of a published mirrorneuron-python-sdk's own Client
against a core (run by the SDK's venv).

python services_driver.py TARGET TOKEN   # prints what each call answered, as JSON

Only the SDK's public Client is used; nothing of it is copied.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

MANIFEST = {
    "manifest_version": "1",
    "graph_id": "witness-services",
    "daemon": True,
    "services": [{"name": "api", "tags": ["v1"]}],
    "nodes": [
        {
            "node_id": "worker",
            "agent_type": "executor",
            "config": {"environment": {"INDEX_PORT": "9200"}},
            "services": [
                {"name": "search-index", "tags": ["v1", "gpu"], "port": "${env.INDEX_PORT}"},
                {"name": "flaky", "checks": [{"type": "script", "command": "true"}]},
            ],
        }
    ],
    "entrypoints": ["worker"],
}


def _wait(client: Any, job_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 20
    while json.loads(client.get_job(job_id))["job"]["status"] != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} never became {wanted}")
        time.sleep(0.02)


def _refusal(call: Any) -> dict[str, str] | None:
    import grpc

    try:
        call()
    except grpc.RpcError as err:
        return {"code": err.code().name, "details": err.details()}
    return None


def scenario(target: str, token: str) -> dict[str, Any]:
    from mn_sdk.client import Client

    client = Client(target=target, timeout=10, auth_token=token)
    out: dict[str, Any] = {}
    job_id = client.submit_job(json.dumps(MANIFEST), {})
    out["job_id"] = job_id
    _wait(client, job_id, "running")
    out["listed"] = json.loads(client.list_services())
    out["passing"] = json.loads(client.list_services(passing_only=True))
    out["by_job_and_tag"] = json.loads(client.list_services(job_id=job_id, tags=["gpu"]))
    out["resolved"] = json.loads(client.resolve_service("search-index", tags=["v1"]))
    out["resolved_failing"] = json.loads(client.resolve_service("flaky"))
    out["checked"] = json.loads(
        client.check_services([{"name": "api"}, {"name": "vector-db", "required": False}, "x"])
    )
    anonymous = Client(target=target, timeout=10, auth_token="")
    out["anonymous"] = _refusal(lambda: anonymous.list_services())
    client.cancel_job(job_id)
    _wait(client, job_id, "cancelled")
    out["after"] = json.loads(client.list_services())
    return out


if __name__ == "__main__":
    print(json.dumps(scenario(sys.argv[1], sys.argv[2])))
