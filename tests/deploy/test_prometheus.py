"""deploy/prometheus and deploy/grafana: the alert rules pass promtool's checks and unit
tests, and rules and dashboard query only metrics the gateway exports."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import DEPLOY, needs_tool
from tests.support import make_zip, pipeline_manifest

API = "/api/v1"
RULES = DEPLOY / "prometheus" / "mn-api-rules.yml"
RULES_TESTS = DEPLOY / "prometheus" / "mn-api-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "mn-api-dashboard.json"
# Series Prometheus makes itself (`up`) or a blackbox exporter probing /api/v1/ready.
NOT_THE_GATEWAYS = {"up", "probe_success"}
# The names a family of each type exports samples under.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_METRIC = re.compile(r"\b(mn_api_[a-z0-9_]+|up|probe_success)\b")


def promql_metrics(expression: str) -> set[str]:
    """The metric names an expression selects (label values and matchers set aside)."""
    bare = _MATCHERS.sub("", _STRINGS.sub('""', expression))
    return set(_METRIC.findall(bare))


def test_promql_metrics_reads_names_not_label_values() -> None:
    expression = (
        'sum by (rpc) (rate(mn_api_core_calls_total{code="mn_api_fake", job="up"}[5m])) / on() up'
    )
    assert promql_metrics(expression) == {"mn_api_core_calls_total", "up"}


def test_promtool_finds_the_rules_valid() -> None:
    promtool = needs_tool("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    promtool = needs_tool("promtool", "prometheus")
    tested = subprocess.run(
        [promtool, "test", "rules", RULES_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_unit_tested() -> None:
    alerts = {rule["alert"] for group in _rules()["groups"] for rule in group["rules"]}
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    assert alerts == firing


def _rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def _dashboard_expressions() -> Iterator[tuple[str, str]]:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield variable["name"], query["query"]


@pytest.fixture
async def exported(client: httpx.AsyncClient) -> set[str]:
    """Every series name the gateway's /metrics exports after some traffic (declared
    families without samples yet count under the names their type exports)."""
    manifest = pipeline_manifest()
    submitted = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert submitted.status_code == 201
    job_id = submitted.json()["job_id"]
    await client.get(f"{API}/jobs/{job_id}")
    await client.get(f"{API}/jobs/{job_id}/events")
    await client.get(f"{API}/jobs/does-not-exist")
    archive = make_zip({"manifest.json": orjson.dumps(manifest)})
    uploaded = await client.post(
        f"{API}/bundles/upload", files={"bundle": ("b.zip", archive, "application/zip")}
    )
    assert uploaded.status_code in (200, 201)
    scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(scraped.text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


@pytest.mark.parametrize("gateway_runtime", ["grpc"], indirect=True)
async def test_the_dashboard_queries_only_what_the_gateway_exports(exported: set[str]) -> None:
    # Traffic went through the core: its calls are there with their samples.
    assert {"mn_api_core_calls_total", "mn_api_core_call_duration_seconds_bucket"} <= exported
    queried: set[str] = set()
    for title, expression in _dashboard_expressions():
        names = promql_metrics(expression)
        assert names, f"{title}: {expression}"
        queried |= names
    assert queried - NOT_THE_GATEWAYS - exported == set()
    # Each of the gateway's families is on the dashboard.
    families = {name for name in exported if name.startswith("mn_api_")}
    shown = {name.removesuffix("_bucket").removesuffix("_total") for name in queried}
    missing = {
        name
        for name in families
        if name.removesuffix("_bucket").removesuffix("_total") not in shown
        and not name.endswith(("_created", "_count", "_sum"))
        and not name.startswith("mn_api_history_journal_")
    }
    assert missing == set()


@pytest.mark.parametrize("gateway_runtime", ["grpc"], indirect=True)
async def test_the_alert_rules_query_only_what_the_gateway_exports(exported: set[str]) -> None:
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            names = promql_metrics(rule["expr"])
            assert names, rule["alert"]
            assert names - NOT_THE_GATEWAYS <= exported, rule["alert"]
