"""Access lines, request ids, and what must never be logged."""

from __future__ import annotations

import logging

import httpx
import pytest

from mn_api.config import Settings
from mn_api.entrypoints import logging_setup
from mn_api.entrypoints.logging_setup import JsonFormatter, configure_logging
from tests.support import asgi_client, pipeline_manifest

API = "/api/v1"


async def test_request_ids_are_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get(f"{API}/health", headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = await client.get(f"{API}/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert made.headers["x-request-id"] != "bad id\nwith newline"
    assert len(made.headers["x-request-id"]) == 32
    problem = await client.get(f"{API}/jobs/ghost", headers={"X-Request-ID": "trace-404"})
    assert problem.json()["request_id"] == "trace-404"


async def test_one_access_line_per_request_with_route_template(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mn_api.access")
    await client.get(f"{API}/jobs/some-job/events", headers={"X-Request-ID": "rid-7"})
    lines = [r for r in caplog.records if r.name == "mn_api.access"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert message.startswith("GET /api/v1/jobs/{job_id}/events 404 ")
    assert message.endswith("ms 127.0.0.1 -")  # the client's address; no credential


async def test_access_lines_name_the_client_and_the_credential_never_the_token(
    settings_factory, memory_runtime, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    import orjson

    caplog.set_level(logging.INFO, logger="mn_api.access")
    settings = settings_factory(api_token="sekrit-token-for-logs")
    peer = ("203.0.113.9", 4000)
    async with asgi_client(settings, memory_runtime, peer=peer) as client:
        await client.get(f"{API}/jobs", headers={"Authorization": "Bearer sekrit-token-for-logs"})
        await client.get(f"{API}/jobs", headers={"Authorization": "Bearer wrong"})
    admitted, refused = [r for r in caplog.records if r.name == "mn_api.access"]
    fingerprint = "tok:" + hashlib.sha256(b"sekrit-token-for-logs").hexdigest()[:16]
    assert admitted.getMessage().endswith(f"ms 203.0.113.9 {fingerprint}")
    assert refused.getMessage().startswith("GET unmatched 401 ")  # refused before routing
    assert refused.getMessage().endswith("ms 203.0.113.9 -")
    entry = orjson.loads(JsonFormatter().format(admitted))
    assert (entry["client"], entry["credential"]) == ("203.0.113.9", fingerprint)
    assert "sekrit" not in caplog.text


async def test_tokens_payloads_and_manifests_stay_out_of_logs(
    settings_factory, memory_runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with asgi_client(settings_factory(api_token="sekrit-token"), memory_runtime) as client:
        manifest = pipeline_manifest()
        manifest["job_name"] = "manifest-marker"
        await client.post(
            f"{API}/jobs",
            headers={"Authorization": "Bearer sekrit-token"},
            json={"manifest": manifest, "payloads": {"a.txt": "payload-marker"}},
        )
        await client.post(f"{API}/jobs", headers={"Authorization": "Bearer wrong-token"}, json={})
    text = caplog.text
    for secret in ("sekrit-token", "wrong-token", "payload-marker", "manifest-marker"):
        assert secret not in text


def test_log_file_falls_back_to_stderr_when_unwritable(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = Settings(log_path=str(blocker / "api.log"))
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging(settings)
        listener = logging_setup._listener
        assert listener is not None
        writers = listener.handlers
        assert writers and all(not isinstance(h, logging.FileHandler) for h in writers)
        logging.getLogger("mn_api").info("still logging")
    finally:
        logging_setup._stop_listener()  # writes out what is still queued
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "still logging" in capsys.readouterr().err


def test_json_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("mn_api.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.request_id = "rid-1"
    line = JsonFormatter().format(record)
    assert '"request_id":"rid-1"' in line and '"message":"GET /x"' in line


async def test_json_access_lines_carry_their_facts_as_fields(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import orjson

    caplog.set_level(logging.INFO, logger="mn_api.access")
    await client.get(f"{API}/jobs/some-job/events", headers={"X-Request-ID": "rid-8"})
    (record,) = [r for r in caplog.records if r.name == "mn_api.access"]
    record.request_id = "rid-8"
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["method"] == "GET" and entry["route"] == "/api/v1/jobs/{job_id}/events"
    assert entry["status"] == 404 and isinstance(entry["duration_ms"], float)
    assert entry["request_id"] == "rid-8" and entry["message"].startswith("GET /api/v1/jobs/")
