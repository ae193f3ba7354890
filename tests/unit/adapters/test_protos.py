"""The committed gRPC modules are exactly what the .proto files generate."""

import importlib.util
from pathlib import Path

from mn_api.adapters.grpc.protos import cluster_pb2, job_pb2, observability_pb2

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location("proto_tool", ROOT / "tools" / "proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_modules_match_the_protos(tmp_path: Path) -> None:
    tool = _generator()
    fresh = tool.generate(tmp_path)
    assert fresh, "protoc wrote nothing"
    for path in fresh:
        committed = tool.PROTOS / path.name
        assert committed.exists(), f"{path.name} is not committed; run make proto"
        assert committed.read_text() == path.read_text(), f"{path.name} is stale; run make proto"


def test_wire_names_and_numbers_are_the_cores() -> None:
    submit = job_pb2.SubmitJobRequest.DESCRIPTOR
    assert submit.full_name == "mirrorneuron.job.v1.SubmitJobRequest"
    assert {f.name: f.number for f in submit.fields} == {
        "manifest_json": 1,
        "payloads": 2,
        "version": 3,
    }
    replay = job_pb2.ReplayDeadLetterResponse.DESCRIPTOR
    assert {f.name: f.number for f in replay.fields} == {"job_id": 1, "status": 2, "agent_id": 3}
    listing = job_pb2.ListJobsRequest.DESCRIPTOR
    assert {f.name: (f.number, f.type) for f in listing.fields} == {
        "limit": (1, listing.fields_by_name["limit"].TYPE_INT32),
        "include_terminal": (2, listing.fields_by_name["include_terminal"].TYPE_BOOL),
        "version": (3, listing.fields_by_name["version"].TYPE_UINT32),
    }
    service = job_pb2.DESCRIPTOR.services_by_name["JobService"]
    assert service.full_name == "mirrorneuron.job.v1.JobService"
    assert set(service.methods_by_name) == {
        "SubmitJob",
        "GetJob",
        "ListJobs",
        "CancelJob",
        "PauseJob",
        "ResumeJob",
        "ClearJobs",
        "CancelAllJobs",
        "ReplayDeadLetter",
        "ExportJobBackup",
        "RestoreJobBackup",
        *(
            f"{verb}Deployment"
            for verb in ("Update", "Get", "Promote", "Rollback", "Pause", "Resume", "Fail")
        ),
        "DeployJob",
        "ListDeployments",
        *(
            f"{verb}Schedule"
            for verb in ("Create", "Update", "Get", "Pause", "Resume", "Delete", "Dispatch")
        ),
        "ListSchedules",
        "EmitTriggerEvent",
        "ListTriggerEvents",
    }
    rollback = job_pb2.RollbackDeploymentRequest.DESCRIPTOR
    # The one request without an interface version: field 2 is the deployment's version.
    assert rollback.fields_by_name["version"].type == rollback.fields_by_name["tag"].type
    cluster = cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"]
    assert cluster.full_name == "mirrorneuron.cluster.v1.ClusterService"
    stream = observability_pb2.DESCRIPTOR.services_by_name["ObservabilityService"]
    assert stream.methods_by_name["StreamEvents"].server_streaming
    request = observability_pb2.StreamEventsRequest.DESCRIPTOR
    assert {f.name: f.number for f in request.fields} == {
        "job_id": 1,
        "follow": 2,
        "heartbeat_interval_ms": 3,
        "limit": 4,
        "version": 5,
    }
