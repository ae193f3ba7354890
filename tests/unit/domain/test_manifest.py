from typing import Any

import pytest

from mn_api.domain.manifest import parse_manifest, validate_manifest
from tests.support import pipeline_manifest


def test_a_complete_manifest_is_accepted_and_parsed() -> None:
    raw = pipeline_manifest(worker={"simulate": {"drop_first": 1, "delay_ms": 5}})
    raw["initial_inputs"] = {"router": [{"text": "hi"}]}
    assert validate_manifest(raw) == []
    manifest = parse_manifest(raw)
    assert manifest.graph_id == "pipeline"
    assert [n.node_id for n in manifest.nodes] == ["router", "worker", "collect"]
    assert manifest.edges[0].message_type == "task"
    assert manifest.node("worker").config["simulate"]["drop_first"] == 1
    assert manifest.initial_inputs == {"router": [{"text": "hi"}]}


def test_a_non_object_is_refused() -> None:
    assert validate_manifest([1, 2]) == ["manifest must be a JSON object"]


def test_every_problem_is_listed_at_once() -> None:
    raw: dict[str, Any] = {
        "graph_id": "",
        "nodes": [
            {"node_id": "a", "agent_type": "router"},
            {"node_id": "a", "agent_type": "wizard"},
            {"agent_type": "executor", "config": {"simulate": {"drop_first": -1}}},
        ],
        "edges": [{"from_node": "a", "to_node": "ghost"}],
        "entrypoints": ["nowhere"],
        "daemon": "yes",
    }
    errors = validate_manifest(raw)
    expected = [
        "manifest_version is required",
        "graph_id is required",
        "duplicate node_id a",
        'unsupported agent_type "wizard" for node a',
        "nodes[2].node_id is required",
        "nodes[2].config.simulate.drop_first must be a non-negative integer",
        "edge unknown references missing to_node ghost",
        "edge unknown must define message_type",
        "entrypoint nowhere does not reference a known node",
        "daemon must be a boolean",
    ]
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert len(errors) == len(expected)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"nodes": []}, "nodes must not be empty"),
        ({"entrypoints": []}, "manifest must define at least one entrypoint"),
        ({"entrypoints": 5}, "manifest must define at least one entrypoint"),
        ({"edges": {}}, "edges must be a list"),
        ({"initial_inputs": {"ghost": []}}, "initial_inputs 'ghost' is not a known node"),
        ({"initial_inputs": "x"}, "initial_inputs must be an object"),
        ({"policies": {"recovery_mode": "pray"}}, "policies.recovery_mode must be one of"),
        ({"requirements": {"cpu": -1}}, "requirements.cpu must be"),
        ({"requirements": []}, "requirements must be an object"),
        ({"metadata": []}, "metadata must be an object"),
        ({"job_name": 5}, "job_name must be a string"),
    ],
)
def test_single_problems_are_named(change: dict[str, Any], fragment: str) -> None:
    raw = {**pipeline_manifest(), **change}
    assert any(fragment in e for e in validate_manifest(raw))


def test_aliases_and_their_template_types_are_accepted() -> None:
    raw = pipeline_manifest()
    raw["nodes"] = [
        {"node_id": "router", "agent_type": "relay", "type": "map"},
        {"node_id": "worker", "agent_type": "sandbox_worker", "type": "accumulator"},
        {"node_id": "collect", "agent_type": "collector", "type": "reduce"},
    ]
    assert validate_manifest(raw) == []
    kinds = [n.kind for n in parse_manifest(raw).nodes]
    assert kinds == ["router", "executor", "aggregator"]


@pytest.mark.parametrize(
    ("agent_type", "template", "fragment"),
    [
        ("router", "reduce", 'template type "reduce" is not supported for agent_type "router"'),
        ("aggregator", "map", 'template type "map" is not supported for agent_type "aggregator"'),
        ("sensor", "stream", 'template type "stream" is not supported for agent_type "sensor"'),
        ("executor", "llm", "type must be one of generic, stream, map, reduce, batch"),
    ],
)
def test_template_types_must_suit_the_agent_type(
    agent_type: str, template: str, fragment: str
) -> None:
    raw = pipeline_manifest()
    raw["nodes"][0] = {"node_id": "router", "agent_type": agent_type, "type": template}
    assert any(fragment in e for e in validate_manifest(raw)), validate_manifest(raw)


def test_entrypoints_may_be_one_string_or_come_from_root_roles() -> None:
    single = {**pipeline_manifest(), "entrypoints": "router"}
    assert validate_manifest(single) == []
    assert parse_manifest(single).entrypoints == ("router",)

    rooted = pipeline_manifest()
    del rooted["entrypoints"]
    rooted["nodes"][0]["role"] = "root_coordinator"
    assert validate_manifest(rooted) == []
    assert parse_manifest(rooted).entrypoints == ("router",)


def test_initial_inputs_take_lone_messages_and_lists_for_every_entrypoint() -> None:
    lone = {**pipeline_manifest(), "initial_inputs": {"router": {"n": 1}}}
    assert parse_manifest(lone).initial_inputs == {"router": [{"n": 1}]}
    listed = {**pipeline_manifest(), "initial_inputs": [{"n": 1}, {"n": 2}]}
    assert parse_manifest(listed).initial_inputs == {"router": [{"n": 1}, {"n": 2}]}


def test_job_name_defaults_to_the_graph_id_and_requirements_are_read() -> None:
    raw = pipeline_manifest()
    del raw["job_name"]
    raw["requirements"] = {"cpu": 2, "memory": "2GB", "gpu": {"min": 1}}
    manifest = parse_manifest(raw)
    assert manifest.job_name == "pipeline"
    assert manifest.requirements == {"cpu": 2.0, "memory": 2048.0, "gpu": 1.0}
