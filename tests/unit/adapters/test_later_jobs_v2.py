"""The simulated JobService v2 (1.2.31): job definitions and their runs, each run a job of
the in-memory runtime under its run id, answered with the core's documents and refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.adapters.memory.services._base import JOB_V2
from tests import support
from tests.support import FakeClock, pipeline_manifest
from tests.support.stand_ins import StandInSchedules

Refusal = tuple[str, str]


HELLO = {"job_name": "daemon hello", "initial_inputs": {"router": [{"text": "hello"}]}}


def daemon_manifest(**extra: Any) -> dict[str, Any]:
    """router -> worker, kept running until it is cancelled, its router given "hello"."""
    return support.daemon_manifest(**{**HELLO, **extra})


class Core:
    """The group called as mn-fake-core calls it: by method name, with request fields."""

    def __init__(self, runtime: InMemoryRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, method: str, **fields: Any) -> Any:
        path = method if method.startswith("/") else JOB_V2 + method
        answer = await self.runtime.services.call(path, fields)
        assert answer["version"] == 2
        document = orjson.loads(answer["result_json"])
        assert document["version"] == 2
        return document

    async def refused(self, method: str, **fields: Any) -> Refusal:
        with pytest.raises(CoreRefusal) as refused:
            await self(method, **fields)
        return refused.value.code, refused.value.message

    async def create(self, manifest: dict[str, Any] | None = None, **fields: Any) -> str:
        created = await self(
            "CreateJob",
            manifest_json=orjson.dumps(manifest or daemon_manifest()).decode(),
            **fields,
        )
        return created["job_id"]


@pytest.fixture
def core(memory_runtime: InMemoryRuntime) -> Core:
    return Core(memory_runtime)


async def test_a_definition_is_created_listed_and_described(core: Core) -> None:
    created = await core(
        "CreateJob",
        manifest_json=orjson.dumps(daemon_manifest()).decode(),
        payloads={"inputs/a.txt": b"alpha"},
        job_id="demo-stable",
        resolved_configuration_json='{"llm": {"temperature": 0}}',
        storage_json="{}",
    )
    assert created["job_id"] == "demo-stable" and created["status"] == "active"
    assert created["blueprint_id"] == created["graph_id"] == "daemon-hello"
    assert created["job_name"] == "daemon hello" and created["data_generation"] == 1
    assert created["owner_node"] == core.runtime.leader
    assert created["run_count"] == created["schedule_count"] == 0
    assert set(created["bundle_ref"]) == {
        "bundle_fingerprint",
        "bundle_bytes",
        "graph_id",
        "manifest_version",
    }
    assert "latest_run_id" not in created and "resolved_configuration" not in created
    detail = await core("GetJob", job_id="demo-stable")
    assert detail["resolved_configuration"] == {"llm": {"temperature": 0}}
    assert detail["storage"] == {"resources": []}
    assert detail["schedules"] == [] and detail["schedule_ids"] == []
    assert "manifest" not in detail and "run_ids" not in detail and "data_dir" not in detail
    generated = await core.create(pipeline_manifest())
    # `job_` and an id made from the graph id as 1.2.31 makes job ids.
    assert generated.startswith("job_p-") and len(generated) == len("job_p-") + 8
    listed = await core("ListJobs", include_archived=False)
    assert [d["job_id"] for d in listed["data"]] == sorted(["demo-stable", generated])


async def test_creating_what_the_core_refuses(core: Core) -> None:
    await core.create(job_id="taken")
    assert await core.refused(
        "CreateJob", manifest_json=orjson.dumps(daemon_manifest()).decode(), job_id="taken"
    ) == ("INTERNAL", "job_already_exists")
    code, text = await core.refused("CreateJob", manifest_json='{"graph_id": "g"}')
    assert code == "INTERNAL" and text.startswith('["manifest_version is required"')
    assert await core.refused(
        "CreateJob",
        manifest_json=orjson.dumps(daemon_manifest()).decode(),
        payloads={"../up.txt": b"x"},
    ) == ("INTERNAL", 'payload path must be relative and stay inside payloads/: "../up.txt"')
    bad_storage = '{"resources": [{"name": "/abs", "access": "read"}]}'
    assert await core.refused(
        "CreateJob",
        manifest_json=orjson.dumps(daemon_manifest()).decode(),
        storage_json=bad_storage,
    ) == ("INTERNAL", "invalid_job_data_declarations")
    assert await core.refused(
        "CreateJob", manifest_json=orjson.dumps(daemon_manifest()).decode(), job_id="no spaces"
    ) == ("INTERNAL", "invalid_job_id")


async def test_unknown_definitions_and_runs_are_not_found(core: Core) -> None:
    for method in ("GetJob", "ListRuns", "StartRun", "ArchiveJob", "ResetJobData"):
        assert await core.refused(method, job_id="ghost") == (
            "NOT_FOUND",
            "job ghost was not found",
        )
    assert await core.refused("DeleteJob", job_id="ghost", confirmed=True) == (
        "NOT_FOUND",
        "job ghost was not found",
    )
    for method in ("GetRun", "CancelRun"):
        assert await core.refused(method, run_id="r-1") == ("NOT_FOUND", "job r-1 was not found")
    for method in ("PauseRun", "ResumeRun"):
        assert await core.refused(method, run_id="r-1") == (
            "NOT_FOUND",
            "job r-1 is not running in the connected cluster",
        )


async def test_a_run_is_a_job_of_the_runtime_under_its_run_id(core: Core) -> None:
    job_id = await core.create(resolved_configuration_json='{"llm": {"temperature": 0}}')
    started = await core(
        "StartRun", job_id=job_id, run_id="demo-run-1", inputs_json='{"topic": "report"}'
    )
    assert started == {
        "job_id": job_id,
        "run_id": "demo-run-1",
        "status": "pending",
        "version": 2,
    }
    runtime = core.runtime
    runtime.run_until_idle()
    details = (await runtime.get_job("demo-run-1")).value
    assert details["job"]["status"] == "running"
    record = runtime.job_record("demo-run-1")
    assert record.manifest.metadata["job_id"] == job_id
    assert record.manifest.metadata["run_id"] == "demo-run-1"
    assert record.manifest.initial_inputs == {"router": [{"text": "hello"}]}
    run = core.runtime.services.group("jobs_v2").runs["demo-run-1"]
    # The manifest's initial inputs, the configuration, the start's inputs, the identity.
    assert run.inputs == {
        "router": [{"text": "hello"}],
        "llm": {"temperature": 0},
        "topic": "report",
        "identity": {"job_id": job_id, "run_id": "demo-run-1"},
    }
    described = await core("GetRun", run_id="demo-run-1")
    assert described["job_id"] == job_id and described["run_id"] == "demo-run-1"
    assert described["status"] == "running" and described["attempt_id"] == "demo-run-1:1"
    assert described["job_data_access"] == "read" and "started_at" in described
    assert described["manifest_ref"] == {"graph_id": "daemon-hello", "manifest_version": "1"}
    generated = (await core("StartRun", job_id=job_id))["run_id"]
    assert generated.startswith("dh-") and runtime.has_job(generated)
    runs = await core("ListRuns", job_id=job_id)
    assert runs["job_id"] == job_id
    assert [r["run_id"] for r in runs["data"]] == ["demo-run-1", generated]
    summary = await core("GetJob", job_id=job_id)
    assert summary["latest_run_id"] == generated and summary["run_count"] == 2
    # The first job service acts on runs by their id.
    await runtime.pause_job("demo-run-1")
    assert (await core("GetRun", run_id="demo-run-1"))["status"] == "paused"


async def test_a_run_is_refused_where_the_core_refuses_it(core: Core) -> None:
    job_id = await core.create()
    await core("StartRun", job_id=job_id, run_id="r-1")
    assert await core.refused("StartRun", job_id=job_id, run_id="r-1") == (
        "INTERNAL",
        "run_already_exists",
    )
    writer = await core.create(
        storage_json='{"resources": [{"name": "state", "access": "read_write"}]}'
    )
    await core("StartRun", job_id=writer, run_id="w-1")
    assert await core.refused("StartRun", job_id=writer) == (
        "INTERNAL",
        '{:job_data_busy, ["w-1"]}',
    )
    await core("CancelRun", run_id="w-1")
    await core("ArchiveJob", job_id=writer)
    assert await core.refused("StartRun", job_id=writer) == ("INTERNAL", "job_not_active")


async def test_a_definition_whose_owner_node_is_gone_cannot_start(clock: FakeClock) -> None:
    runtime = InMemoryRuntime(auto_run=False, clock=clock, nodes=2)
    core = Core(runtime)
    job_id = await core.create()
    runtime.kill_node(runtime.leader)
    assert await core.refused("StartRun", job_id=job_id) == (
        "UNAVAILABLE",
        '{:job_data_owner_unavailable, "mn1@127.0.0.1"}',
    )


async def test_run_controls_answer_with_the_cores_words(core: Core) -> None:
    job_id = await core.create()
    await core("StartRun", job_id=job_id, run_id="r-1")
    assert await core.refused("PauseRun", run_id="r-1") == ("NOT_FOUND", "job is not running")
    core.runtime.run_until_idle()
    assert await core("PauseRun", run_id="r-1") == {
        "run_id": "r-1",
        "status": "paused",
        "version": 2,
    }
    assert (await core("ResumeRun", run_id="r-1"))["status"] == "resumed"
    assert (await core("CancelRun", run_id="r-1"))["status"] in {
        "cancelled",
        "cancellation_pending",
    }
    core.runtime.run_until_idle()
    assert (await core("CancelRun", run_id="r-1"))["status"] == "cancelled"
    assert await core.refused("PauseRun", run_id="r-1") == ("NOT_FOUND", "job is not running")


async def test_changing_a_definition_needs_its_runs_to_have_ended(core: Core) -> None:
    job_id = await core.create()
    await core("StartRun", job_id=job_id, run_id="r-1")
    for method in ("ArchiveJob", "ResetJobData"):
        assert await core.refused(method, job_id=job_id) == (
            "FAILED_PRECONDITION",
            '{:active_runs, ["r-1"]}',
        )
    assert await core.refused("DeleteJob", job_id=job_id) == ("INTERNAL", "confirmation_required")
    assert await core.refused("DeleteJob", job_id=job_id, confirmed=True) == (
        "FAILED_PRECONDITION",
        '{:active_runs, ["r-1"]}',
    )
    await core("CancelRun", run_id="r-1")
    core.runtime.run_until_idle()
    reset = await core("ResetJobData", job_id=job_id)
    assert reset["data_generation"] == 2
    archived = await core("ArchiveJob", job_id=job_id)
    assert archived["status"] == "archived"
    listed = await core("ListJobs", include_archived=False)
    assert listed["data"] == []
    everything = await core("ListJobs", include_archived=True)
    assert [d["job_id"] for d in everything["data"]] == [job_id]
    deleted = await core("DeleteJob", job_id=job_id, confirmed=True)
    assert deleted == {"job_id": job_id, "status": "deleted", "version": 2}
    # Historical runs stay, as on 1.2.31.
    assert (await core("GetRun", run_id="r-1"))["status"] == "cancelled"


async def test_updating_a_definition(core: Core) -> None:
    manifest = daemon_manifest(metadata={"mn_storage": {"root": "/shared/x"}})
    job_id = await core.create(manifest)
    updated = await core(
        "UpdateJob",
        job_id=job_id,
        attrs_json='{"status": "archived", "job_name": "renamed", '
        '"resolved_configuration": {"depth": 2}}',
    )
    assert updated["status"] == "active" and updated["job_name"] == "renamed"
    assert (await core("GetJob", job_id=job_id))["resolved_configuration"] == {"depth": 2}
    other = pipeline_manifest()
    assert await core.refused(
        "UpdateJob", job_id=job_id, manifest_json=orjson.dumps(other).decode()
    ) == (
        "FAILED_PRECONDITION",
        '{:job_bundle_identity_mismatch, {"daemon-hello", "daemon-hello"}, '
        '{"pipeline", "pipeline"}}',
    )
    replaced = await core(
        "UpdateJob",
        job_id=job_id,
        attrs_json="{}",
        manifest_json=orjson.dumps(daemon_manifest(job_name="second")).decode(),
        payloads={"b.txt": b"beta"},
    )
    assert replaced["job_name"] == "second"
    assert replaced["retired_definition_resources"] == {
        "metadata": {"mn_storage": {"root": "/shared/x"}}
    }
    assert replaced["bundle_ref"] != updated["bundle_ref"]
    await core("StartRun", job_id=job_id, run_id="r-2")
    assert core.runtime.job_record("r-2").payloads == {"b.txt": b"beta"}
    assert await core.refused(
        "UpdateJob",
        job_id=job_id,
        manifest_json=orjson.dumps(daemon_manifest()).decode(),
    ) == ("FAILED_PRECONDITION", '{:active_runs, ["r-2"]}')


async def test_a_finished_run_can_be_deleted(core: Core) -> None:
    job_id = await core.create()
    await core("StartRun", job_id=job_id, run_id="r-1")
    await core("StartRun", job_id=job_id, run_id="r-2")
    assert await core.refused("DeleteRun", run_id="r-1", confirmed=False) == (
        "INTERNAL",
        "confirmation_required",
    )
    assert await core.refused("DeleteRun", run_id="r-1", confirmed=True) == (
        "INTERNAL",
        "job_is_not_terminal",
    )
    await core("CancelRun", run_id="r-2")
    core.runtime.run_until_idle()
    deleted = await core("DeleteRun", run_id="r-2", confirmed=True)
    assert deleted == {"run_id": "r-2", "status": "deleted", "version": 2}
    assert not core.runtime.has_job("r-2")
    described = await core("GetJob", job_id=job_id)
    assert described["latest_run_id"] == "r-1" and described["run_count"] == 1


LIVE = {
    "live_inputs": {
        "topic": {
            "entrypoint": "router",
            "message_type": "task",
            "schema": {
                "type": "object",
                "required": ["text"],
                "additionalProperties": False,
                "properties": {
                    "text": {"type": "string", "maxLength": 20},
                    "depth": {"type": "integer", "default": 1, "maximum": 5},
                },
            },
        },
        "sideways": {"entrypoint": "worker", "message_type": "task"},
    }
}


async def test_a_live_run_takes_the_inputs_its_manifest_declares(core: Core) -> None:
    job_id = await core.create(daemon_manifest(contract=LIVE))
    await core("StartRun", job_id=job_id, run_id="r-1")

    async def send(input_id: str, payload: Any, key: str = "k-1") -> Any:
        return await core(
            "SendRunInput",
            run_id="r-1",
            input_id=input_id,
            payload_json=payload if isinstance(payload, str) else orjson.dumps(payload).decode(),
            idempotency_key=key,
        )

    accepted = await send("topic", {"text": "hi"})
    assert accepted == {
        "run_id": "r-1",
        "input_id": "topic",
        "command_id": "k-1",
        "status": "accepted",
        "version": 2,
    }
    await send("topic", {"text": "again"})  # the same key: one delivery
    core.runtime.run_until_idle()
    received = [
        orjson.loads(raw)["payload"]
        for raw in core.runtime.job_record("r-1").events
        if b'"k-1"' in raw
    ]
    assert len(received) == 1
    assert received[0]["to"] == "router" and received[0]["class"] == "command"

    def refused(text: str) -> Refusal:
        return ("INVALID_ARGUMENT", '{:invalid_live_input, "' + text + '"}')

    checks: list[tuple[Callable[[], Any], Refusal]] = [
        (lambda: send("topic", {"depth": 2}), refused("$ is missing required fields: text")),
        (lambda: send("topic", {"text": "x", "n": 1}), refused("$ contains unknown fields: n")),
        (lambda: send("topic", {"text": "x" * 21}), refused("$.text is too long")),
        (lambda: send("topic", {"text": 3}), refused("$.text must be string")),
        (lambda: send("topic", {"text": "x", "depth": 9}), refused("$.depth is above the maximum")),
        (lambda: send("nope", {}), refused("input nope is not declared")),
        (lambda: send("sideways", {}), refused("declared live input route is not permitted")),
        (lambda: send("Bad-Id", {}), refused("input_id is invalid")),
        (lambda: send("topic", {}, key=" "), refused("idempotency_key is required")),
        (lambda: send("topic", "[1]"), refused("payload must be a JSON object")),
        (lambda: send("topic", "x" * 16_385), refused("payload exceeds the live-input size limit")),
    ]
    for call, expected in checks:
        with pytest.raises(CoreRefusal) as caught:
            await call()
        assert (caught.value.code, caught.value.message) == expected
    await core("CancelRun", run_id="r-1")
    core.runtime.run_until_idle()
    with pytest.raises(CoreRefusal) as caught:
        await send("topic", {"text": "late"}, key="k-2")
    assert (caught.value.code, caught.value.message) == (
        "FAILED_PRECONDITION",
        '{:inactive_run, "cancelled"}',
    )


async def test_a_definitions_schedules_are_the_schedules_groups(core: Core) -> None:
    schedules = StandInSchedules.install(core.runtime)
    job_id = await core.create()
    created = await core(
        "CreateJobSchedule",
        job_id=job_id,
        schedule_json='{"crons": ["0 2 * * *"]}',
        source_json='{"cli": "test"}',
    )
    assert created["schedule_id"] == "sched_1" and created["job_id"] == job_id
    assert created["version"] == 2 and created["dispatch_count"] == 1
    assert created["active_run_count"] == 0
    assert "manifest" not in created and "dispatches" not in created
    assert schedules.records["sched_1"]["manifest"]["graph_id"] == "daemon-hello"
    assert (await core("GetJob", job_id=job_id))["schedule_ids"] == ["sched_1"]
    assert await core.refused("CreateJobSchedule", job_id=job_id, schedule_json="{}") == (
        "INVALID_ARGUMENT",
        '["periodic schedules require cron or crons"]',
    )
    # A dispatch starts a run of the definition.
    run_id = await schedules.start_run({"topic": "nightly"})
    assert (await core("GetRun", run_id=run_id))["job_id"] == job_id
    await core("CancelRun", run_id=run_id)
    core.runtime.run_until_idle()
    await core("ArchiveJob", job_id=job_id)
    assert schedules.calls == [("pause", "sched_1")]
    assert await core.refused("CreateJobSchedule", job_id=job_id, schedule_json="{}") == (
        "INTERNAL",
        "job_not_active",
    )
    await core("DeleteJob", job_id=job_id, confirmed=True)
    assert schedules.calls[-1] == ("delete", "sched_1")


@pytest.mark.parametrize("release", ["1.1", "1.2.5", "d26bef71"])
async def test_only_1_2_31_has_job_definitions(release: str) -> None:
    runtime = InMemoryRuntime(release=release, auto_run=False)
    with pytest.raises(CoreRefusal) as refused:
        await Core(runtime)("ListJobs")
    assert refused.value.code == "UNIMPLEMENTED"


async def test_a_reset_forgets_every_definition(core: Core) -> None:
    await core.create()
    core.runtime.reset()
    assert (await core("ListJobs", include_archived=True))["data"] == []
