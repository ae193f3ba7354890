"""SubmitJob and LaunchBlueprint against fake ports: what is sent, what is kept, and that a
refused submission sends nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import pytest

from mn_api.application.ports import Blueprint, BundleContents, WebhookStore
from mn_api.application.use_cases import (
    LaunchBlueprint,
    LaunchLog,
    LaunchRequest,
    SubmitJob,
    SubmitJobCommand,
)
from mn_api.application.webhooks import WebhookConfig, WebhookRequest, Webhooks
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    NotSupportedError,
    RequestValidationError,
    SharedStateUnavailableError,
    TooLargeForRuntimeError,
    UnsafePayloadPathError,
    WebhookUrlNotAllowedError,
)
from mn_api.domain.webhooks.records import Subscription, Watch
from mn_api.domain.webhooks.url_policy import UrlPolicy
from tests.support import map_resolver
from tests.unit.use_cases.fakes import Catalogue, KeptBundles, KeptTopologies, ScriptedCore

MANIFEST = orjson.dumps(
    {"graph_id": "g", "nodes": [{"node_id": "a"}, {"node_id": "b"}], "edges": [["a", "b"]]}
).decode()


class Subscriptions(WebhookStore):
    """Only what submitting touches; `down` fails the write as an unreachable store would."""

    def __init__(self) -> None:
        self.recorded: list[tuple[list[Subscription], Watch]] = []
        self.down = False

    async def subscribe(self, subscriptions: Sequence[Subscription], watch: Watch) -> None:
        if self.down:
            raise SharedStateUnavailableError("the webhook store does not answer")
        self.recorded.append((list(subscriptions), watch))


def _never(name: str) -> Callable[..., Awaitable[Any]]:
    async def called(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(f"submitting a job does not call WebhookStore.{name}")

    return called


for _name in WebhookStore.__abstractmethods__ - {"subscribe"}:
    setattr(Subscriptions, _name, _never(_name))
Subscriptions.__abstractmethods__ = frozenset()


def webhooks(store: WebhookStore, **config: Any) -> Webhooks:
    policy = UrlPolicy.of(["hooks.example.com"])
    return Webhooks(
        store,
        map_resolver({"hooks.example.com": [["93.184.216.34"]]}),
        WebhookConfig(policy, secrets=(b"k" * 32,), **config),
        clock=lambda: 1000.0,
    )


@pytest.fixture
def core() -> ScriptedCore:
    return ScriptedCore()


@pytest.fixture
def topologies() -> KeptTopologies:
    return KeptTopologies()


async def test_a_manifest_needs_neither_bundles_nor_webhooks(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    submit = SubmitJob(core, topologies)
    ack = await submit(SubmitJobCommand(manifest_json=MANIFEST, payloads={"in/a.txt": b"x"}))
    assert (ack.job_id, ack.status) == ("job-1", "pending")
    assert core.submitted["job-1"] == (MANIFEST, {"in/a.txt": b"x"})
    assert topologies.kept["job-1"]["edges"] == [["a", "b"]]


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (SubmitJobCommand(bundle_id="bnd_1"), NotSupportedError),
        (
            SubmitJobCommand(manifest_json=MANIFEST, webhook=WebhookRequest("https://h.test/")),
            NotSupportedError,
        ),
        (SubmitJobCommand(), RequestValidationError),
        (SubmitJobCommand(manifest_json="[1, 2]"), RequestValidationError),
        (SubmitJobCommand(manifest_json=MANIFEST, payloads={"../x": b""}), UnsafePayloadPathError),
    ],
    ids=["bundle", "webhook", "nothing", "not-an-object", "payload-path"],
)
async def test_what_cannot_be_submitted_sends_nothing(
    core: ScriptedCore, topologies: KeptTopologies, command: SubmitJobCommand, error: type
) -> None:
    with pytest.raises(error):
        await SubmitJob(core, topologies)(command)
    assert core.calls == []
    assert topologies.kept == {}


async def test_more_than_one_message_carries_is_refused_before_sending(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    core.message_limit_bytes = len(MANIFEST) + 10
    submit = SubmitJob(core, topologies)
    await submit(SubmitJobCommand(manifest_json=MANIFEST, payloads={"a": b"123456789"}))
    with pytest.raises(TooLargeForRuntimeError) as refused:
        await submit(SubmitJobCommand(manifest_json=MANIFEST, payloads={"a": b"1234567890"}))
    assert refused.value.limit_bytes == len(MANIFEST) + 10
    assert [c[0] for c in core.calls] == ["submit_job"]


async def test_a_bundle_gives_the_manifest_and_payloads_and_the_command_adds_to_them(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    bundles = KeptBundles(
        {"bnd_1": BundleContents(MANIFEST, {"in/a.txt": b"bundle", "in/b.txt": b"bundle"})}
    )
    submit = SubmitJob(core, topologies, bundles=bundles)
    await submit(SubmitJobCommand(bundle_id="bnd_1", payloads={"in/b.txt": b"mine"}))
    assert core.submitted["job-1"] == (MANIFEST, {"in/a.txt": b"bundle", "in/b.txt": b"mine"})
    # The stored bundle is not changed by what one submission added.
    assert (await bundles.load("bnd_1")).payloads["in/b.txt"] == b"bundle"


async def test_a_topology_that_cannot_be_kept_does_not_stop_the_job(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    topologies.down = True
    ack = await SubmitJob(core, topologies)(SubmitJobCommand(manifest_json=MANIFEST))
    assert core.statuses[ack.job_id] == "pending"


async def test_a_webhook_is_checked_before_the_job_is_sent_and_recorded_after(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    store = Subscriptions()
    submit = SubmitJob(core, topologies, webhooks=webhooks(store))
    with pytest.raises(WebhookUrlNotAllowedError):
        await submit(
            SubmitJobCommand(manifest_json=MANIFEST, webhook=WebhookRequest("https://evil.test/"))
        )
    assert core.calls == []
    ack = await submit(
        SubmitJobCommand(
            manifest_json=MANIFEST,
            webhook=WebhookRequest("https://hooks.example.com/mn", ("job_failed",)),
        )
    )
    [(subscriptions, watch)] = store.recorded
    assert watch == Watch(ack.job_id, -1, "pending")
    assert [(s.url, s.events, s.source) for s in subscriptions] == [
        ("https://hooks.example.com/mn", ("job_failed",), "job")
    ]


async def test_a_job_whose_webhooks_cannot_be_recorded_is_taken_back(
    core: ScriptedCore, topologies: KeptTopologies
) -> None:
    store = Subscriptions()
    store.down = True
    submit = SubmitJob(
        core, topologies, webhooks=webhooks(store, global_urls=("https://hooks.example.com/",))
    )
    with pytest.raises(SharedStateUnavailableError):
        await submit(SubmitJobCommand(manifest_json=MANIFEST))
    assert [c[0] for c in core.calls] == ["submit_job", "cancel_job"]
    assert core.statuses["job-1"] == "cancelled"


def launcher(core: ScriptedCore, catalogue: Catalogue, log: LaunchLog) -> LaunchBlueprint:
    bundles = KeptBundles({"bnd_up": BundleContents(MANIFEST)})
    submit = SubmitJob(core, KeptTopologies(), bundles=bundles)
    return LaunchBlueprint(catalogue, bundles, submit, log, clock=lambda: 1000.0)


async def test_a_launch_reports_each_step_and_is_answered_again_without_a_second_job(
    core: ScriptedCore,
) -> None:
    blueprint = Blueprint("research", "Research", "Reads and writes", "demo")
    catalogue = Catalogue({"research": (blueprint, BundleContents(MANIFEST, {"p": b"1"}))})
    log = LaunchLog(clock=lambda: 1000.0)
    launch = launcher(core, catalogue, log)
    done = await launch(LaunchRequest("catalog", blueprint_id="research", progress_id="p-1"))
    view = done.as_dict()
    assert (view["status"], view["job_id"], view["completed"]) == ("completed", "job-1", True)
    assert {p["id"]: p["status"] for p in view["phases"]} == {
        "resolve_source": "completed",
        "requirements": "skipped",
        "model_install": "skipped",
        "validation": "completed",
        "submit": "completed",
        "open_job_progress": "completed",
    }
    assert view["blueprint"]["category"] == "demo"
    again = await launch(LaunchRequest("catalog", blueprint_id="research", progress_id="p-1"))
    assert again is done and list(core.submitted) == ["job-1"]
    assert log.get("p-1") is done


@pytest.mark.parametrize(
    ("request_", "error", "phase"),
    [
        (
            LaunchRequest("catalog", blueprint_id="nope", progress_id="p-2"),
            BlueprintNotFoundError,
            "resolve_source",
        ),
        (LaunchRequest("catalog", progress_id="p-2"), RequestValidationError, "resolve_source"),
        (
            LaunchRequest("ftp", path="x", progress_id="p-2"),
            RequestValidationError,
            "resolve_source",
        ),
        (
            LaunchRequest(
                "bundle", bundle_id="bnd_up", config_overrides={"a": 1}, progress_id="p-2"
            ),
            RequestValidationError,
            "validation",
        ),
        (LaunchRequest("catalog", progress_id="a b"), RequestValidationError, None),
    ],
    ids=["unknown-blueprint", "no-blueprint-id", "unknown-source", "overrides", "progress-id"],
)
async def test_a_failed_launch_says_at_which_step_and_starts_nothing(
    core: ScriptedCore, request_: LaunchRequest, error: type, phase: str | None
) -> None:
    log = LaunchLog(clock=lambda: 1000.0)
    with pytest.raises(error) as failed:
        await launcher(core, Catalogue(), log)(request_)
    assert core.calls == []
    launch = log.find("p-2")
    if phase is None:
        assert launch is None  # refused before any launch began
        return
    assert launch is not None
    view = launch.as_dict()
    assert (view["status"], view["current_phase"], view["error"]) == (
        "failed",
        phase,
        failed.value.detail,
    )
    assert "job_id" not in view
