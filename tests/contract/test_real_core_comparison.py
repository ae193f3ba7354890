"""One scripted scenario against the real core and against its simulation, field by field.

The scenario runs once on a fresh real core (source d26bef71) and once on mn-fake-core with
the `d26bef71` profile, both through GrpcRuntime as the gateway reaches them. Every answer,
document, event and refusal is recorded; values that differ by nature (ids, times, paths,
the host's hardware) are replaced by placeholders, and the two records must then be equal.
A simulation that drifts from the real core fails here, naming the first field that differs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from mn_api.application.ports import RuntimePort
from mn_api.domain.errors import DomainError
from mn_api.domain.events import EventRecord
from tests.contract.conftest import generation_a, wait_for_status
from tests.contract.test_generation_a_contract import HOST_LOCAL, executor, relay
from tests.support.realcore import RealCore, release_archive

pytestmark = pytest.mark.skipif(release_archive() is None, reason="no real core release here")

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Keys whose values are generated (ids, times, waits the core measures, places on the
# core's disk, the host's size).
VOLATILE = {
    "message_id", "lease_id", "manifest_path", "job_path", "remote_dir", "acquired_at_ms",
    "requested_at_ms", "queue_wait_ms", "logical_processors", "total_bytes", "total_mb",
}  # fmt: skip


class Masker:
    """Replaces what differs by nature with placeholders; job ids by their order of birth."""

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}

    def job(self, job_id: str) -> str:
        return self.jobs.setdefault(job_id, f"<job {len(self.jobs)}>")

    def __call__(self, value: Any, key: str = "") -> Any:
        if key in VOLATILE:
            return f"<{key}>"
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            if TIMESTAMP.match(value):
                return "<time>"
            for job_id, name in self.jobs.items():
                value = value.replace(job_id, name)
        return value


async def scenario(runtime: RuntimePort) -> list[tuple[str, Any]]:
    """The script: every step's outcome, masked, in order."""
    mask = Masker()
    record: list[tuple[str, Any]] = []

    async def step(name: str, work: Any) -> Any:
        try:
            outcome = await work
        except DomainError as error:
            record.append((name, mask({"refused": type(error).__name__, "detail": error.detail})))
            return None
        if hasattr(outcome, "job_id") and hasattr(outcome, "status"):
            mask.job(outcome.job_id)
            record.append((name, mask({"job_id": outcome.job_id, "status": outcome.status})))
        elif hasattr(outcome, "value"):
            record.append((name, mask(outcome.value)))
        return outcome

    async def submitted(name: str, manifest: dict[str, Any]) -> str:
        ack = await step(name, runtime.submit_job(orjson.dumps(manifest).decode(), {}))
        return ack.job_id

    async def settled(name: str, job_id: str, done: set[str]) -> None:
        """The job's document and history once it reached one of `done`, quiet."""
        async with asyncio.timeout(15):
            await wait_for_status(runtime, job_id, done)
            while True:  # a live job's agents are quick, but not instant
                before = await _history(runtime, job_id)
                await asyncio.sleep(0.3)
                if await _history(runtime, job_id) == before:
                    break
        details = (await runtime.get_job(job_id)).value
        record.append((f"{name}: details", mask(_completer_count_masked(details))))
        record.append((f"{name}: history", mask(await _history(runtime, job_id))))

    waiting = await submitted("submit a relay that waits", relay({"complete_after": 2}))
    await settled("waiting relay", waiting, {"running"})
    await step("resume a running job", runtime.resume_job(waiting))
    await step("pause", runtime.pause_job(waiting))
    await step("pause again", runtime.pause_job(waiting))
    await step("paused details", runtime.get_job(waiting))
    await step("resume", runtime.resume_job(waiting))
    await step("resume again", runtime.resume_job(waiting))
    await step("cancel", runtime.cancel_job(waiting))
    await settled("cancelled relay", waiting, {"cancelled"})
    await step("cancel again", runtime.cancel_job(waiting))
    await step("pause a cancelled job", runtime.pause_job(waiting))
    await step("resume a cancelled job", runtime.resume_job(waiting))

    done = await submitted(
        "submit a relay that completes", relay({"complete_on_message": True}, {"entry": [{"n": 1}]})
    )
    await settled("completed relay", done, {"completed"})
    await step("pause a completed job", runtime.pause_job(done))

    failing = await submitted("submit an executor without a sandbox", executor())
    await settled("failed executor", failing, {"failed"})
    hosted = await submitted(
        "submit an executor on the host runner",
        executor({"runner_module": HOST_LOCAL, "command": ["true"], "complete_job": True}),
    )
    await settled("host executor", hosted, {"completed"})

    ghost = "relay-1000000000000-000000000000"
    mask.job(ghost)
    for name, operation in (
        ("details of an unknown job", runtime.get_job),
        ("pause an unknown job", runtime.pause_job),
        ("resume an unknown job", runtime.resume_job),
        ("cancel an unknown job", runtime.cancel_job),
    ):
        await step(name, operation(ghost))
    await step("an empty manifest", runtime.submit_job("{}", {}))
    await step("text that is no JSON", runtime.submit_job("{nope", {}))
    await step("clear finished jobs", runtime.clear_jobs())
    await step("cancel every job", runtime.cancel_all_jobs())
    await step("replay a dead letter", runtime.replay_dead_letter(done, 4))
    await step("list every job", runtime.list_jobs(0, True))
    await step("list live jobs", runtime.list_jobs(0, False))
    await step("system summary", runtime.system_summary())
    return record


async def _history(runtime: RuntimePort, job_id: str) -> list[Any]:
    return [
        item.value
        async for item in runtime.stream_events(job_id, follow=False)
        if isinstance(item, EventRecord)
    ]


@pytest.fixture
async def real_runtime(tmp_path: Path) -> AsyncIterator[RuntimePort]:
    """A fresh real core: its listings hold this scenario's jobs only."""
    core = RealCore(tmp_path).start()
    async with generation_a("real", core) as runtime:
        yield runtime
    core.stop()


@pytest.fixture
async def simulated_runtime() -> AsyncIterator[RuntimePort]:
    async with generation_a("grpc") as runtime:
        yield runtime


@pytest.mark.slow
async def test_the_simulation_answers_the_scenario_as_the_real_core_does(
    real_runtime: RuntimePort, simulated_runtime: RuntimePort
) -> None:
    real = await scenario(real_runtime)
    simulated = await scenario(simulated_runtime)
    assert [name for name, _ in simulated] == [name for name, _ in real]
    for (name, expected), (_, actual) in zip(real, simulated, strict=True):
        where = first_difference(expected, actual)
        assert where is None, f"{name}: the simulation differs from the real core at {where}"


def _completer_count_masked(details: Any) -> Any:
    """The real core writes the count of the agent that completed a job as the job ends:
    most often without the message that completed it, now and then (under load) with it.
    That one count is masked; every other agent's is compared."""
    job = details.get("job") if isinstance(details, dict) else None
    result = job.get("result") if isinstance(job, dict) else None
    completer = result.get("agent_id") if isinstance(result, dict) else None
    for agent in details.get("agents", []) if completer else []:
        if agent.get("agent_id") == completer and "processed_messages" in agent:
            agent["processed_messages"] = "<the completing agent's count>"
    return details


def first_difference(real: Any, simulated: Any, path: str = "") -> str | None:
    """Where two values first differ, with both values; None when they are equal."""
    if isinstance(real, dict) and isinstance(simulated, dict):
        for key in sorted(set(real) | set(simulated)):
            if key not in real or key not in simulated:
                side = "the real core" if key in real else "the simulation"
                return f"{path}.{key} (only {side} has it)"
            found = first_difference(real[key], simulated[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(real, list) and isinstance(simulated, list):
        for index, (a, b) in enumerate(zip(real, simulated, strict=False)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        if len(real) != len(simulated):
            return f"{path} (real: {len(real)} items, simulated: {len(simulated)})"
        return None
    if real != simulated:
        return f"{path} (real: {real!r}, simulated: {simulated!r})"
    return None
