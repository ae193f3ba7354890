"""The OpenAPI document: every answer an operation gives, and the constraints its requests
must meet, checked with a JSON Schema validator against what the gateway accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest

from mn_api.config import Settings
from mn_api.container import build_container
from mn_api.entrypoints.http import create_app
from tests.support import pipeline_manifest

API = "/api/v1"
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
BUNDLE = "bnd_" + "0123456789abcdef" * 2
Spec = dict[str, Any]


def _document(settings: Settings) -> Spec:
    return create_app(build_container(settings)).openapi()


@pytest.fixture
def spec(settings_factory: Callable[..., Settings]) -> Spec:
    return _document(settings_factory())


def _operations(spec: Spec) -> list[tuple[str, str, Spec]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def _validator(spec: Spec, schema: Spec) -> Any:
    """A validator of `schema`, whose references resolve within the document."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})


def _body(spec: Spec, path: str, media: str = "application/json") -> Any:
    return _validator(spec, spec["paths"][path]["post"]["requestBody"]["content"][media]["schema"])


def test_every_problem_answer_is_problem_json(spec: Spec) -> None:
    for method, path, operation in _operations(spec):
        for status, answer in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert answer["content"] == PROBLEM, (method, path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_operation_with_inputs_documents_422(spec: Spec) -> None:
    for method, path, operation in _operations(spec):
        answers = operation["responses"]
        assert {"400", "413", "500"} <= set(answers), (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in answers, (method, path)
    for path in (f"{API}/jobs/unfinished", f"{API}/runs/{{run_id}}/ui"):
        assert spec["paths"][path]["get"]["responses"]["422"]["content"] == PROBLEM


def test_tokens_and_rate_limits_are_documented_where_they_apply(
    spec: Spec, settings_factory: Callable[..., Settings]
) -> None:
    assert not any("401" in op["responses"] for _, _, op in _operations(spec))
    secured = _document(settings_factory(api_token="admin", rate_limit="5/minute"))
    jobs = secured["paths"][f"{API}/jobs"]
    assert {"401", "429", "503"} <= set(jobs["get"]["responses"])
    assert "403" not in jobs["get"]["responses"] and "403" in jobs["post"]["responses"]
    health = secured["paths"][f"{API}/health"]["get"]
    assert "401" not in health["responses"] and "security" not in health


def test_runtime_and_upload_answers_are_documented(spec: Spec) -> None:
    upload = spec["paths"][f"{API}/bundles/upload"]["post"]["responses"]
    launch = spec["paths"][f"{API}/blueprints/launch/runs"]["post"]["responses"]
    for answers in (upload, launch):
        assert {"404", "409", "412", "413", "422", "502", "503", "504", "507"} <= set(answers)
    assert "403" in launch
    stream = spec["paths"][f"{API}/jobs/{{job_id}}/events/stream"]["get"]["responses"]
    assert "410" in stream


def test_the_event_page_query_says_which_parameters_go_together(spec: Spec) -> None:
    operation = spec["paths"][f"{API}/jobs/{{job_id}}/events"]["get"]
    (page,) = [p for p in operation["parameters"] if p["in"] == "query"]
    assert (page["style"], page["explode"]) == ("form", True)
    query = _validator(spec, page["schema"])
    for valid in ({}, {"offset": 5, "limit": 10, "type": "job_started"}, {"tail": 3}):
        assert query.is_valid(valid), valid
    for invalid in (
        {"tail": 3, "limit": 1},
        {"tail": 3, "offset": 2},
        {"offset": -1},
        {"limit": 0},
        {"type": "x" * 1000},
        {"offset": "first"},
    ):
        assert not query.is_valid(invalid), invalid


def test_the_manifest_schema_holds_the_domain_rules(spec: Spec) -> None:
    submit = _body(spec, f"{API}/jobs")
    manifest = pipeline_manifest()
    assert submit.is_valid({"manifest": manifest})
    assert submit.is_valid({"manifest": manifest, "payloads": {"inputs/a.txt": "x"}})
    assert submit.is_valid({"bundle_id": BUNDLE})
    node = manifest["nodes"][0]
    for invalid in (
        {},
        {"manifest": manifest, "manifest_json": "{}"},
        {"manifest": {k: v for k, v in manifest.items() if k != "graph_id"}},
        {"manifest": {**manifest, "nodes": []}},
        {"manifest": {**manifest, "nodes": [{**node, "agent_type": "wizard"}]}},
        {"manifest": {**manifest, "policies": {"recovery_mode": "pray"}}},
        {"manifest": manifest, "payloads": {"../etc/passwd": "x"}},
        {"manifest": manifest, "payloads_base64": {"a.bin": "not base64!"}},
        {"manifest": manifest, "big": 2**64},
        {"bundle_id": "../bundles/x"},
        {"manifest": manifest, "webhook": {"url": "ftp://hooks.example.com"}},
    ):
        assert not submit.is_valid(invalid), invalid


def test_the_upload_names_its_parts(spec: Spec) -> None:
    content = spec["paths"][f"{API}/bundles/upload"]["post"]["requestBody"]["content"]
    form = content["multipart/form-data"]
    assert form["encoding"]["webhook"]["contentType"] == "application/json"
    schema = spec["components"]["schemas"][form["schema"]["$ref"].rpartition("/")[2]]
    assert schema["required"] == ["bundle"]
    assert "MN_API_REQUEST_SIZE_LIMIT_BYTES" in schema["properties"]["bundle"]["description"]
    upload = _validator(spec, form["schema"])
    assert upload.is_valid({"bundle": "PK"})
    assert not upload.is_valid({"webhook": {"url": "https://hooks.example.com/mn"}})
    assert not upload.is_valid({"bundle": "PK", "webhook": {"events": ["job_completed"]}})


def test_each_launch_source_requires_what_it_names(spec: Spec) -> None:
    launch = _body(spec, f"{API}/blueprints/launch/runs")
    for valid in (
        {"version": 1, "source": "catalog", "blueprint_id": "demo/relay"},
        {"source": "catalog", "blueprint_id": "plain", "progress_id": "", "config_overrides": {}},
        {"source": "path", "path": "/srv/blueprints/relay"},
        {"source": "bundle", "_bundle_path": BUNDLE, "progress_id": "run-1:a.b"},
        {"source": "bundle", "bundle_id": BUNDLE},
    ):
        assert launch.is_valid(valid), valid
    for invalid in (
        {"source": "catalog"},
        {"source": "catalog", "path": "/srv/blueprints/relay"},
        {"source": "path", "blueprint_id": "demo/relay"},
        {"source": "bundle", "blueprint_id": "demo/relay"},
        {"source": "bundle", "bundle_id": "bnd_xyz"},
        {"source": "catalog", "blueprint_id": "../secrets"},
        {"source": "path", "path": "relative/folder"},
        {"source": "catalog", "blueprint_id": "plain", "progress_id": "-starts-with-dash"},
        {"source": "catalog", "blueprint_id": "plain", "progress_id": "x" * 129},
        {"source": "catalog", "blueprint_id": "plain", "config_overrides": {"a": 1}},
        {"source": "zip", "path": "/srv/a.zip"},
    ):
        assert not launch.is_valid(invalid), invalid
