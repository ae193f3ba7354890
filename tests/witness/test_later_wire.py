"""The wire of the published SDK 1.2.31, against ours: every service, method, message and
field of its generated modules is in our protos alike, and mn-fake-core in the 1.2.31
profile serves every one of its methods but those that act on the core's host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, free_port
from tests.witness.test_published_sdks import sdk_python

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("wire_driver.py")
CLUSTER = "/mirrorneuron.cluster.v1.ClusterService/"
# What the simulation does not serve: these act on the core's host (its model gateway,
# runtime models, Docker workers, runtime status feed), which a simulated core has none of.
HOST_METHODS = {
    CLUSTER + name
    for name in (
        "SyncLiteLLMGateway",
        "RemoveLiteLLMGatewayRoute",
        "PrepareRuntimeModel",
        "PrepareDockerWorker",
        "CleanupDockerWorker",
        "GetRuntimeStatuses",
        "PublishRuntimeStatus",
        "AckRuntimeStatusEvents",
    )
}


def _drive(python: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(python), str(DRIVER), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if not k.startswith("MN_")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def _index(files: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every service's methods and every message (nested ones too) by full name."""
    services: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def walk(prefix: str, found: list[dict[str, Any]]) -> None:
        for message in found:
            name = f"{prefix}.{message['name']}"
            messages[name] = message
            walk(name, message.get("nestedType", []))

    for proto in files.values():
        package = proto["package"]
        for service in proto.get("service", []):
            services[f"{package}.{service['name']}"] = {
                m["name"]: (
                    m["inputType"],
                    m["outputType"],
                    m.get("clientStreaming", False),
                    m.get("serverStreaming", False),
                )
                for m in service.get("method", [])
            }
        walk(f".{package}", proto.get("messageType", []))
    return services, messages


def _shape(field: dict[str, Any], messages: dict[str, Any]) -> dict[str, Any]:
    """A field's number, type and label; for a map, its key and value types."""
    entry = messages.get(field.get("typeName", ""), {})
    if entry.get("options", {}).get("mapEntry"):
        key, value = sorted(entry["field"], key=lambda f: f["number"])
        return {
            "number": field["number"],
            "map": [key["type"], value["type"], value.get("typeName", "")],
        }
    return {
        "number": field["number"],
        "type": field["type"],
        "label": field["label"],
        "typeName": field.get("typeName", ""),
    }


def _differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    their_services, their_messages = _index(theirs)
    our_services, our_messages = _index(ours)
    found: list[str] = []
    for service, methods in their_services.items():
        mine = our_services.get(service)
        if mine is None:
            found.append(f"service {service} is missing")
            continue
        found += [
            f"{service}.{name}: ours {mine.get(name)}, the SDK's {signature}"
            for name, signature in methods.items()
            if mine.get(name) != signature
        ]
    for name, message in their_messages.items():
        if message.get("options", {}).get("mapEntry"):
            continue  # compared as the map fields that use them
        mine = our_messages.get(name)
        if mine is None:
            found.append(f"message {name} is missing")
            continue
        our_fields = {f["name"]: f for f in mine.get("field", [])}
        for field in message.get("field", []):
            real = _shape(field, their_messages)
            have = our_fields.get(field["name"])
            shape = _shape(have, our_messages) if have is not None else None
            if shape != real:
                found.append(f"{name}.{field['name']}: ours {shape}, the SDK's {real}")
    return found


def test_every_method_message_and_field_of_the_sdk_is_ours_alike() -> None:
    theirs = _drive(sdk_python("1.2.31"), "files", "mn_sdk.proto")
    ours = _drive(Path(sys.executable), "files", "mn_api.adapters.grpc.protos")
    services, messages = _index(theirs)
    assert len(services) == 5 and sum(len(m) for m in services.values()) == 71
    assert len(messages) > 80
    assert _differences(theirs, ours) == []
    # The comparison itself tells a changed field from a matching one.
    changed = json.loads(json.dumps(ours))
    cluster = changed["cluster_pb2"]["messageType"]
    request = next(m for m in cluster if m["name"] == "ListServicesRequest")
    request["field"][0]["number"] += 100
    [difference] = _differences(theirs, changed)
    assert difference.startswith(".mirrorneuron.cluster.v1.ListServicesRequest.query_json: ")


@pytest.fixture(scope="module")
def probed() -> dict[str, str]:
    """Each method of the SDK 1.2.31, called once on mn-fake-core --release 1.2.31."""
    core = FakeCoreProcess(
        free_port(), "--release", "1.2.31", "--step-ms", "5", "--token", CORE_TOKEN
    ).start()
    try:
        target = f"127.0.0.1:{core.port}"
        return _drive(sdk_python("1.2.31"), "probe", "mn_sdk.proto", target, CORE_TOKEN)
    finally:
        core.stop()


def test_the_methods_served_so_far(probed: dict[str, str]) -> None:
    assert probed.keys() >= HOST_METHODS
    for name in ("ListServices", "ResolveService", "CheckServices", "GetResource"):
        assert probed[CLUSTER + name] != "UNIMPLEMENTED", name
    assert probed["/mirrorneuron.job.v1.JobService/GetJob"] != "UNIMPLEMENTED"
    for name in (
        *("CreateSchedule", "UpdateSchedule", "GetSchedule", "ListSchedules", "PauseSchedule"),
        *("ResumeSchedule", "DeleteSchedule", "DispatchSchedule", "EmitTriggerEvent"),
        *("ListTriggerEvents", "DeployJob", "UpdateDeployment", "GetDeployment"),
        *("ListDeployments", "PromoteDeployment", "RollbackDeployment", "PauseDeployment"),
        *("ResumeDeployment", "FailDeployment"),
    ):
        assert probed["/mirrorneuron.job.v1.JobService/" + name] != "UNIMPLEMENTED", name


def test_the_simulation_serves_every_method_of_the_sdk(probed: dict[str, str]) -> None:
    missing = sorted(
        path
        for path, code in probed.items()
        if code == "UNIMPLEMENTED" and path not in HOST_METHODS
    )
    assert missing == [], f"{len(missing)} methods of the SDK 1.2.31 are not served: {missing}"
