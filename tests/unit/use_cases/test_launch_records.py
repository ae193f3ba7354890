"""LaunchBlueprint's records: a progress id is claimed at once and belongs to its owner,
launches sent together under one id start one job, and a launch that ends in any error
is recorded as failed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from mn_api.application.ports import Blueprint, BundleContents
from mn_api.application.use_cases import LaunchBlueprint, LaunchLog, LaunchRequest, SubmitJob
from mn_api.domain.errors import (
    LaunchInProgressError,
    LaunchNotFoundError,
    LaunchOutcomeUnknownError,
    ProgressIdTakenError,
    RuntimeTimeoutError,
)
from tests.unit.use_cases.fakes import Catalogue, KeptBundles, KeptTopologies, ScriptedCore

MANIFEST = orjson.dumps(
    {"graph_id": "g", "nodes": [{"node_id": "a"}, {"node_id": "b"}], "edges": [["a", "b"]]}
).decode()
BLUEPRINT = Blueprint("research", "Research", "", "")


class HeldCatalogue(Catalogue):
    """A catalogue whose reads wait for `release`, or fail with `failure` when set."""

    def __init__(self) -> None:
        super().__init__({"research": (BLUEPRINT, BundleContents(MANIFEST))})
        self.release = asyncio.Event()
        self.reads = 0
        self.failure: BaseException | None = None

    async def blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        self.reads += 1
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return await super().blueprint(blueprint_id)


class FailingCore(ScriptedCore):
    """A core whose submissions fail with `failure` while it is set."""

    failure: BaseException | None = None

    async def submit_job(self, manifest_json: str, payloads: Any) -> Any:
        if self.failure is not None:
            self._call("submit_job")
            raise self.failure
        return await super().submit_job(manifest_json, payloads)


@pytest.fixture
def core() -> FailingCore:
    return FailingCore()


@pytest.fixture
def log() -> LaunchLog:
    return LaunchLog(clock=lambda: 1000.0)


def launcher(core: ScriptedCore, catalogue: Catalogue, log: LaunchLog) -> LaunchBlueprint:
    bundles = KeptBundles()
    submit = SubmitJob(core, KeptTopologies(), bundles=bundles)
    return LaunchBlueprint(catalogue, bundles, submit, log, clock=lambda: 1000.0)


def _request(owner: str = "tok:a", progress_id: str = "p-1") -> LaunchRequest:
    return LaunchRequest("catalog", blueprint_id="research", progress_id=progress_id, owner=owner)


async def test_launches_sent_together_under_one_id_start_one_job(
    core: FailingCore, log: LaunchLog
) -> None:
    catalogue = HeldCatalogue()
    launch = launcher(core, catalogue, log)
    first = asyncio.ensure_future(launch(_request()))
    await asyncio.sleep(0)
    others = await asyncio.gather(*(launch(_request()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(other, LaunchInProgressError) for other in others)
    catalogue.release.set()
    done = await first
    assert (done.status, done.job_id) == ("completed", "job-1")
    again = await asyncio.gather(*(launch(_request()) for _ in range(3)))
    assert all(answer is done for answer in again)
    assert catalogue.reads == 1 and list(core.submitted) == ["job-1"]


async def test_a_progress_id_belongs_to_the_owner_that_claimed_it(
    core: FailingCore, log: LaunchLog
) -> None:
    catalogue = HeldCatalogue()
    catalogue.release.set()
    launch = launcher(core, catalogue, log)
    done = await launch(_request(owner="tok:a"))
    with pytest.raises(ProgressIdTakenError):
        await launch(_request(owner="tok:b"))
    assert log.get("p-1", "tok:a") is done
    with pytest.raises(LaunchNotFoundError):
        log.get("p-1", "tok:b")
    assert log.find("p-1", "tok:b") is None
    assert list(core.submitted) == ["job-1"]


async def test_an_unexpected_error_fails_the_launch_and_it_may_be_sent_again(
    core: FailingCore, log: LaunchLog
) -> None:
    catalogue = HeldCatalogue()
    catalogue.failure = OSError("disk gone")
    catalogue.release.set()
    launch = launcher(core, catalogue, log)
    with pytest.raises(OSError, match="disk gone"):
        await launch(_request())
    failed = log.get("p-1", "tok:a").as_dict()
    assert (failed["status"], failed["current_phase"]) == ("failed", "resolve_source")
    assert failed["error"] == "the launch failed unexpectedly"
    assert "disk gone" not in orjson.dumps(failed).decode()
    # Nothing reached the runtime: the same id may be used again, and starts its job.
    catalogue.failure = None
    retried = await launch(_request())
    assert (retried.status, retried.job_id) == ("completed", "job-1")


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("lost"), RuntimeTimeoutError("no answer in time")],
    ids=["unexpected", "answer-lost"],
)
async def test_a_launch_that_failed_while_submitting_is_not_started_again(
    core: FailingCore, log: LaunchLog, failure: BaseException
) -> None:
    catalogue = HeldCatalogue()
    catalogue.release.set()
    core.failure = failure
    launch = launcher(core, catalogue, log)
    with pytest.raises(type(failure)):
        await launch(_request())
    record = log.get("p-1", "tok:a")
    assert (record.status, record.phase) == ("failed", "submit")
    core.failure = None
    with pytest.raises(LaunchOutcomeUnknownError):
        await launch(_request())
    assert core.submitted == {}
