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
        "graph_id": "bad id with spaces",
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
        "graph_id must start",
        "nodes[1].node_id 'a' is duplicated",
        "nodes[1].agent_type must be one of",
        "nodes[2].node_id is required",
        "nodes[2].config.simulate.drop_first must be a non-negative integer",
        "edges[0].to_node 'ghost' is not a known node",
        "edges[0].message_type is required",
        "entrypoints[0] 'nowhere' is not a known node",
        "daemon must be a boolean",
    ]
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert len(errors) == len(expected)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"nodes": []}, "nodes must be a non-empty list"),
        ({"entrypoints": []}, "entrypoints must be a non-empty list"),
        ({"edges": {}}, "edges must be a list"),
        ({"initial_inputs": {"ghost": []}}, "initial_inputs 'ghost' is not a known node"),
        ({"initial_inputs": {"router": "x"}}, "must be a list"),
        ({"metadata": []}, "metadata must be an object"),
        ({"job_name": 5}, "job_name must be a string"),
    ],
)
def test_single_problems_are_named(change: dict[str, Any], fragment: str) -> None:
    raw = {**pipeline_manifest(), **change}
    assert any(fragment in e for e in validate_manifest(raw))
