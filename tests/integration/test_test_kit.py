"""The test kit other teams use: the simulated core's control surface (reset, the calls it
received, the next calls of an RPC failing or held), its processes, and the pytest plugin
driving a downstream project's contract tests with no conftest at all."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest

from mn_api.adapters.grpc.protos import cluster_pb2, cluster_pb2_grpc, job_pb2, job_pb2_grpc
from mn_api.testing import FakeCoreProcess, GatewayProcess, ProcessFailedError
from tests.support import waiting_manifest

pytestmark = pytest.mark.slow

TOKEN = "kit-token"
README = Path(__file__).resolve().parents[2] / "README.md"
MANIFEST = orjson.dumps(waiting_manifest()).decode()


@pytest.fixture(scope="module")
def core() -> Iterator[FakeCoreProcess]:
    with FakeCoreProcess("1.2.31", token=TOKEN) as started:
        yield started


@pytest.fixture
def stubs(core: FakeCoreProcess) -> Iterator[tuple[job_pb2_grpc.JobServiceStub, object]]:
    core.control.reset()
    with grpc.insecure_channel(core.target) as channel:
        yield job_pb2_grpc.JobServiceStub(channel), cluster_pb2_grpc.ClusterServiceStub(channel)


def test_the_next_calls_of_an_rpc_fail_with_the_status_scripted_then_are_served(
    core: FakeCoreProcess, stubs
) -> None:
    jobs, cluster = stubs
    armed = core.control.fail_next(
        "GetSystemSummary", 2, code="RESOURCE_EXHAUSTED", message="too busy"
    )
    assert armed == [
        {
            "rpc": "GetSystemSummary",
            "remaining": 2,
            "code": "RESOURCE_EXHAUSTED",
            "message": "too busy",
        }
    ]
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as refused:
            cluster.GetSystemSummary(cluster_pb2.GetSystemSummaryRequest(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == "too busy"
    assert cluster.GetSystemSummary(cluster_pb2.GetSystemSummaryRequest(), timeout=5).summary_json
    # Other RPCs were never touched.
    assert jobs.ListJobs(job_pb2.ListJobsRequest(limit=5), timeout=5).jobs_json
    assert core.control.fail_next("ListJobs") == [
        {
            "rpc": "ListJobs",
            "remaining": 1,
            "code": "UNAVAILABLE",
            "message": "scripted UNAVAILABLE",
        }
    ]


def test_a_delayed_call_is_held_then_served_and_its_deadline_still_counts(
    core: FakeCoreProcess, stubs
) -> None:
    jobs, _cluster = stubs
    core.control.delay_next("ListJobs", 2, seconds=1.5)
    with pytest.raises(grpc.RpcError) as late:
        jobs.ListJobs(job_pb2.ListJobsRequest(limit=5), timeout=0.3)
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.monotonic()
    assert jobs.ListJobs(job_pb2.ListJobsRequest(limit=5), timeout=10).jobs_json
    assert time.monotonic() - started >= 1.0
    assert core.control.status()["nodes"]  # the control surface itself is never held


def test_calls_are_listed_without_the_token_and_reset_forgets_jobs_calls_and_scripts(
    core: FakeCoreProcess, stubs
) -> None:
    jobs, _cluster = stubs
    ack = jobs.SubmitJob(job_pb2.SubmitJobRequest(manifest_json=MANIFEST), timeout=5)
    jobs.GetJob(
        job_pb2.GetJobRequest(job_id=ack.job_id),
        metadata=(("authorization", f"Bearer {TOKEN}"), ("x-request-id", "r1")),
        timeout=5,
    )
    calls = core.control.calls()
    assert [c["rpc"] for c in calls] == ["SubmitJob", "GetJob"]
    get = core.control.calls("GetJob")[0]
    assert get["authorization"] is True and get["metadata"]["x-request-id"] == "r1"
    assert TOKEN not in str(calls)
    assert calls[0]["method"] == "/mirrorneuron.job.v1.JobService/SubmitJob"
    core.control.fail_next("SubmitJob")

    state = core.control.reset()

    assert state["state_store"] == "up" and state["lost"] == []
    assert core.control.calls() == []
    listed = jobs.ListJobs(job_pb2.ListJobsRequest(limit=5, include_terminal=True), timeout=5)
    assert ack.job_id not in listed.jobs_json
    assert jobs.SubmitJob(job_pb2.SubmitJobRequest(manifest_json=MANIFEST), timeout=5)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"action": "fail_next", "rpc": "SubmitJob", "code": "OK"}, "`code`"),
        ({"action": "fail_next", "rpc": "SubmitJob", "code": "NOT_A_STATUS"}, "`code`"),
        ({"action": "fail_next", "rpc": "SubmitJob", "count": 0}, "`count`"),
        ({"action": "fail_next", "rpc": "SubmitJob", "count": True}, "`count`"),
        ({"action": "fail_next", "count": 1}, "`rpc`"),
        ({"action": "delay_next", "rpc": "/x/SubmitJob"}, "`rpc`"),
        ({"action": "delay_next", "rpc": "GetJob", "seconds": -1}, "`seconds`"),
        ({"action": "delay_next", "rpc": "GetJob", "seconds": 10_000}, "`seconds`"),
        ({"action": "delay_next", "rpc": "GetJob", "seconds": "1"}, "`seconds`"),
    ],
)
def test_a_script_that_cannot_be_armed_is_refused_and_nothing_is_armed(
    core: FakeCoreProcess, fields: dict, complaint: str
) -> None:
    core.control.reset()
    action = fields.pop("action")
    with pytest.raises(grpc.RpcError) as refused:
        core.control.apply(action, **fields)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in refused.value.details()
    assert core.control.fail_next("Nothing")[0]["rpc"] == "Nothing"
    assert len(core.control.fail_next("Other")) == 2


def test_the_gateway_in_front_answers_a_scripted_failure_as_the_core_failing(
    core: FakeCoreProcess,
) -> None:
    core.control.reset()
    with GatewayProcess(core) as gateway, httpx.Client(base_url=gateway.url) as client:
        core.control.fail_next("GetJob", 10, code="UNAVAILABLE")
        answer = client.get("/api/v1/jobs/some-job")
        assert answer.status_code == 503
        assert answer.json()["error"] == "runtime_unavailable"
        gets = core.control.calls("GetJob")
        assert gets and all(call["authorization"] for call in gets)
    assert gateway.process is None


def test_a_process_that_cannot_start_says_why_and_leaves_nothing_running() -> None:
    broken = FakeCoreProcess("1.2.31", args=("--nodes", "0"))
    with pytest.raises(ProcessFailedError, match="did not start"):
        broken.start()
    assert broken.process is None


DOWNSTREAM = """
    import pytest

    MANIFEST = {
        "manifest_version": "1", "graph_id": "kit",
        "nodes": [{"node_id": "a", "agent_type": "aggregator",
                   "config": {"complete_on_message": True}}],
        "edges": [], "entrypoints": ["a"],
    }

    def test_submit_and_see_the_call(mn_client, mn_fake_core):
        answer = mn_client.post("/api/v1/jobs", json={"manifest": MANIFEST})
        assert answer.status_code == 201, answer.text
        assert len(mn_fake_core.control.calls("SubmitJob")) == 1

    def test_each_test_starts_on_a_fresh_core(mn_client, mn_fake_core):
        assert mn_fake_core.control.calls("SubmitJob") == []
        assert mn_client.get("/api/v1/jobs").json()["data"] == []

    def test_a_failing_core(mn_client, mn_fake_core):
        mn_fake_core.control.fail_next("SubmitJob", code="UNAVAILABLE")
        answer = mn_client.post("/api/v1/jobs", json={"manifest": MANIFEST})
        assert answer.json()["error"] == "runtime_unavailable"

    def test_in_process(mn_app_client, mn_release):
        assert mn_release == "1.1"
        answer = mn_app_client.post("/api/v1/jobs", json={"manifest": MANIFEST})
        assert answer.status_code == 201, answer.text
"""


def test_a_downstream_project_runs_its_contract_tests_with_the_plugin_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_contract.py").write_text(textwrap.dedent(DOWNSTREAM))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (tmp_path / "test_readme_contract.py").write_text(next(b for b in blocks if "mn_client" in b))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mn-release", "1.1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "6 passed" in run.stdout
