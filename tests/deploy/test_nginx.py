"""deploy/nginx/mn-api.conf in front of a gateway process: bodies up to the limits reach
the gateway, larger ones get a problem, and event streams are not held back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mn_api.entrypoints.http.problems import problem_body
from tests.deploy.conftest import DEPLOY, needs_tool
from tests.support import (
    GatewayProcess,
    check_problem,
    free_port,
    make_zip,
    pipeline_manifest,
    terminate,
    wait_http,
)

pytestmark = pytest.mark.slow
API = "/api/v1"
SNIPPET = DEPLOY / "nginx" / "mn-api.conf"
MIB = 1024 * 1024
# As the snippet asks: the gateway takes bundles of up to 100 MiB; nginx keeps JSON at 5 MiB.
GATEWAY_LIMIT = 100 * MIB


def nginx_config(folder: Path, port: int, gateway_port: int) -> Path:
    """A whole nginx configuration: the snippet as an operator installs it, listening on
    `port` and proxying to `gateway_port`, with every file nginx writes under `folder`."""
    snippet = SNIPPET.read_text()
    for line, replacement in (
        ("    listen 80;\n", f"    listen 127.0.0.1:{port};\n"),
        ("    server 127.0.0.1:4001;\n", f"    server 127.0.0.1:{gateway_port};\n"),
    ):
        assert snippet.count(line) == 1, line
        snippet = snippet.replace(line, replacement)
    (folder / "mn-api.conf").write_text(snippet)
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    main = folder / "nginx.conf"
    main.write_text(
        "daemon off;\n"
        # Started as root, nginx's worker would run as nobody, who cannot enter the test's
        # folders; otherwise it runs as the user running the test.
        + ("user root;\n" if os.geteuid() == 0 else "")
        + "worker_processes 1;\n"
        f"pid {folder / 'nginx.pid'};\n"
        "error_log stderr warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {temp['client_body']};\n"
        f"    proxy_temp_path {temp['proxy']};\n"
        f"    fastcgi_temp_path {temp['fastcgi']};\n"
        f"    uwsgi_temp_path {temp['uwsgi']};\n"
        f"    scgi_temp_path {temp['scgi']};\n"
        f"    include {folder / 'mn-api.conf'};\n"
        "}\n"
    )
    return main


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("gateway"),
        MN_FAKE_STEP_MS="5",
        MN_API_REQUEST_SIZE_LIMIT_BYTES=str(GATEWAY_LIMIT),
        MN_API_TRUSTED_PROXIES="127.0.0.1",
    )
    yield process.start()
    process.stop()


@pytest.fixture(scope="module")
def proxy(gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = needs_tool("nginx", "nginx")
    folder = tmp_path_factory.mktemp("nginx")
    port = free_port()
    config = nginx_config(folder, port, gateway.port)
    command = [nginx, "-e", "stderr", "-p", str(folder), "-c", str(config)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    log = (folder / "nginx.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}{API}/health")
        yield base
    finally:
        terminate(process)
        log.close()


@pytest.fixture
async def client(proxy: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy, timeout=60) as client:
        yield client


def _padded_manifest(size: int) -> bytes:
    """A valid submission of about `size` bytes: a pipeline whose input carries padding."""
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"pad": ""}]}
    body = orjson.dumps({"manifest": manifest})
    manifest["initial_inputs"]["router"][0]["pad"] = "x" * (size - len(body))
    return orjson.dumps({"manifest": manifest})


async def test_health_answers_through_the_proxy(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["x-request-id"]


async def test_a_4_mib_submission_is_accepted(client: httpx.AsyncClient) -> None:
    body = _padded_manifest(4 * MIB)
    assert len(body) == 4 * MIB
    response = await client.post(
        f"{API}/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["job_id"]


async def test_a_50_mib_bundle_reaches_the_gateway_and_is_stored(
    client: httpx.AsyncClient,
) -> None:
    payload = os.urandom(50 * MIB)  # incompressible: the upload is as large as the bundle
    archive = make_zip({"manifest.json": orjson.dumps(pipeline_manifest()), "data.bin": payload})
    assert len(archive) > 50 * MIB
    response = await client.post(
        f"{API}/bundles/upload", files={"bundle": ("bundle.zip", archive, "application/zip")}
    )
    assert response.status_code in (200, 201), response.text
    bundle_id = response.json()["bundle_id"]
    submitted = await client.post(f"{API}/jobs", json={"bundle_id": bundle_id})
    assert submitted.status_code == 201, submitted.text


@pytest.mark.parametrize(
    ("route", "limit"), [(f"{API}/jobs", 5 * MIB), (f"{API}/bundles/upload", 100 * MIB)]
)
async def test_a_body_over_the_routes_limit_gets_nginxs_413_in_the_gateways_format(
    client: httpx.AsyncClient, route: str, limit: int
) -> None:
    response = await client.post(
        route, content=b"\0" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    # Word for word the problem the gateway answers for that limit.
    detail = f"the request body is larger than {limit} bytes"
    expected = problem_body(413, "request_too_large", detail, limit_bytes=limit)
    assert check_problem(response.json()) == expected
    # nginx answered: the body never reached the gateway, which stamps every answer.
    assert "x-request-id" not in response.headers


async def test_a_body_within_the_limit_is_the_gateways_to_judge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{API}/jobs", content=b"{" * MIB, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    body = check_problem(response.json())
    assert body["error"] == "validation_error"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_stream_events_arrive_while_the_job_still_runs(
    client: httpx.AsyncClient,
) -> None:
    manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 100}})
    manifest["initial_inputs"] = {"router": [{"n": i} for i in range(30)]}
    submitted = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]
    async with client.stream("GET", f"{API}/jobs/{job_id}/events/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        first: list[str] = []
        async for line in lines:
            if line == "" and any(part.startswith("id:") for part in first):
                break
            first.append(line)
        # An event came through while the stream is still open and its job running:
        # nothing waits for the end of the answer.
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["job"]
        assert job["status"] not in ("completed", "failed", "cancelled")
        data = orjson.loads(next(p for p in first if p.startswith("data:"))[5:])
        assert data["type"] == "job_pending"
