"""What the gateway keeps per request stays within fixed bounds, whatever clients send."""

from __future__ import annotations

import secrets

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.telemetry.prometheus import LABELLED_METHODS, PrometheusTelemetry
from mn_api.config import Settings
from tests.support import asgi_client

API = "/api/v1"
ODD_METHODS = ("PROPFIND", "MKCOL", "PURGE", "LOCK", "REPORT", "SEARCH", "BREW")


def series(exposition: str) -> set[str]:
    """The series a scrape shows: each sample's name and labels, without its value."""
    return {
        line.rsplit(" ", 1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


async def hostile_round(client: httpx.AsyncClient) -> None:
    """Unknown routes, random job ids and query strings, and methods no route serves."""
    for _ in range(25):
        junk = secrets.token_hex(6)
        await client.get(f"/{junk}", params={junk: junk})
        await client.get(f"{API}/{junk}/{junk}.php")
        await client.get(f"{API}/jobs/{junk}", params={"include": junk})
        await client.post(f"{API}/jobs/{junk}/cancel")
        for method in (*ODD_METHODS, f"X-{junk.upper()}"):
            await client.request(method, f"{API}/jobs/{junk}")
            await client.request(method, f"/{junk}")


async def test_metric_series_stay_fixed_under_random_paths_and_methods(
    settings: Settings, memory_runtime: InMemoryRuntime
) -> None:
    async with asgi_client(settings, memory_runtime) as client:
        await client.get("/metrics")  # its own series, there from now on
        await hostile_round(client)
        first = series((await client.get("/metrics")).text)
        await hostile_round(client)
        second = series((await client.get("/metrics")).text)
    requests = {s for s in second if s.startswith("mn_api_http_requests_total")}
    assert requests and second == first
    assert not any("PROPFIND" in s or "X-" in s for s in second)
    assert 'mn_api_http_requests_total{method="OTHER",route="unmatched",status="404"}' in second
    assert any('route="/api/v1/jobs/{job_id}"' in s for s in requests)


@pytest.mark.parametrize("method", [*ODD_METHODS, "get", "X-ANYTHING"])
def test_a_method_no_route_serves_is_labelled_other(method: str) -> None:
    telemetry = PrometheusTelemetry()
    telemetry.request(method, "unmatched", 405, 0.001)
    telemetry.request("GET", "unmatched", 404, 0.001)
    labelled = {
        sample.labels["method"]
        for metric in telemetry.registry.collect()
        for sample in metric.samples
        if "method" in sample.labels
    }
    assert labelled == {"OTHER", "GET"}
    assert len(telemetry._request_children) == 2


def test_the_served_methods_keep_their_own_label() -> None:
    telemetry = PrometheusTelemetry()
    for method in sorted(LABELLED_METHODS):
        telemetry.request(method, "/api/v1/jobs", 200, 0.001)
    exposition = telemetry.exposition().decode()
    for method in LABELLED_METHODS:
        assert f'method="{method}",route="/api/v1/jobs",status="200"' in exposition
