"""Inputs that used to end in a 500, an unbounded answer or a broken promise: each now gets
a clear problem, and nothing is stored or half-written."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.domain.bundle_rules import Limits
from mn_api.entrypoints.logging_setup import without_secrets
from tests.support import asgi_client, eventually, make_zip, pipeline_manifest

API = "/api/v1"
MANIFEST = orjson.dumps(pipeline_manifest())


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(request_size_limit_bytes=200_000, bundle_quota_bytes=30_000)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(settings, InMemoryRuntime(step_seconds=0.002), lifespan=True) as c:
        yield c


def kept(settings: Settings) -> list[str]:
    root = Path(settings.bundle_dir)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("state.sqlite3"))


async def upload(client: httpx.AsyncClient, archive: bytes) -> httpx.Response:
    return await client.post(
        f"{API}/bundles/upload", files={"bundle": ("b.zip", archive, "application/zip")}
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"manifest": {"graph_id": "g", "n": 123456789012345678901234567890}}',
        b'{"manifest": {"graph_id": "g", "n": -99999999999999999999}}',
        b'{"manifest": {"graph_id": "g", "n": -9223372036854775809}}',
        b'{"manifest": {"graph_id": "g", "n": 1e30}}',
        b'{"manifest": {"graph_id": "g", "n": NaN}}',
        b'{"manifest": {"graph_id": "g", "n": Infinity}}',
        b'{"manifest": {"graph_id": "\\ud800"}}',
        b'{"manifest": {"graph_id": "g"}, "payloads": {"\\udfff": "x"}}',
    ],
    ids=[
        "int-beyond-64-bits",
        "negative-beyond-64-bits",
        "negative-beyond-64-bits-in-19-digits",
        "whole-number-beyond-64-bits-with-an-exponent",
        "nan",
        "infinity",
        "lone-surrogate",
        "surrogate-key",
    ],
)
async def test_json_nothing_downstream_can_carry_is_422(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        f"{API}/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_large_but_valid_integers_and_long_digit_strings_pass(
    client: httpx.AsyncClient,
) -> None:
    manifest = {
        **pipeline_manifest(),
        "metadata": {"n": 2**63 - 1, "s": "1" * 40, "e": 9.2e18, "f": 6.5e-3, "h": "3e99"},
    }
    response = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("in\x85put.txt", "control character"),
        ("in\x9bput.txt", "control character"),
        ("evil\u202etxt.exe", "bidirectional"),
        ("evil\u2066x", "bidirectional"),
    ],
)
async def test_payload_names_that_mislead_are_unsafe(
    client: httpx.AsyncClient, key: str, reason: str
) -> None:
    response = await client.post(
        f"{API}/jobs", json={"manifest": pipeline_manifest(), "payloads": {key: "x"}}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "unsafe_payload_path"
    assert reason in response.json()["reason"]


async def test_a_manifest_of_a_million_bad_nodes_gets_a_small_answer(
    client: httpx.AsyncClient, settings_factory: Callable[..., Settings]
) -> None:
    nodes = b",".join([b"{}"] * 1_000_000)
    body = b'{"manifest": {"manifest_version": "1", "graph_id": "g", "nodes": [' + nodes + b"]}}"
    big = settings_factory(request_size_limit_bytes=10_000_000)
    async with asgi_client(big, InMemoryRuntime(step_seconds=0.002), lifespan=True) as c:
        response = await c.post(
            f"{API}/jobs", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "manifest_invalid"
    assert len(problem["errors"]) == 100
    assert problem["error_count"] == 2_000_001  # node_id and agent_type for each, entrypoints
    assert len(response.content) < 20_000
    assert "2000001 problems" in problem["detail"]


@pytest.mark.parametrize(
    "members",
    [
        {"manifest.json": MANIFEST, "payloads/a": b"file", "payloads/a/b": b"inside"},
        {"manifest.json": MANIFEST, "payloads/a/b": b"inside", "payloads/a": b"file"},
        {"manifest.json": MANIFEST, "payloads/" + "n" * 300: b"x"},
    ],
    ids=["file-then-folder", "folder-then-file", "name-too-long"],
)
async def test_bundle_names_the_disk_cannot_hold_are_400(
    client: httpx.AsyncClient, settings: Settings, members: dict[str, bytes]
) -> None:
    response = await upload(client, make_zip(members))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bundle_invalid_path"
    assert kept(settings) == []


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (errno.ENOSPC, 507, "insufficient_storage"),
        (errno.EROFS, 503, "bundle_store_unavailable"),
        (errno.EACCES, 503, "bundle_store_unavailable"),
    ],
)
async def test_a_full_or_read_only_bundle_folder_is_said_so(
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    failure: int,
    status: int,
    code: str,
) -> None:
    def refuse(*_args: Any) -> None:
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr("mn_api.adapters.bundles.filesystem.os.rename", refuse)
    response = await upload(client, make_zip({"manifest.json": MANIFEST}))
    assert response.status_code == status
    problem = response.json()
    assert problem["error"] == code
    assert str(settings.bundle_dir) not in response.text
    assert kept(settings) == []


async def test_the_bundle_quota_is_507_once_used_up(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    archive = make_zip({"manifest.json": MANIFEST, "payloads/data.bin": os.urandom(12_000)})
    first, second = await upload(client, archive), await upload(client, archive)
    assert first.status_code == second.status_code == 201
    third = await upload(client, archive)
    assert third.status_code == 507 and third.json()["error"] == "insufficient_storage"
    assert len(kept(settings)) == 2


async def test_what_one_submission_cannot_carry_is_413_before_anything_is_stored(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(request_size_limit_bytes=300_000, bundle_max_bytes=10_000_000)
    runtime = InMemoryRuntime(step_seconds=0.002)
    runtime.message_limit_bytes = 250_000  # as a core's message limit would
    async with asgi_client(settings, runtime, lifespan=True) as client:
        archive = make_zip({"manifest.json": MANIFEST, "payloads/big.bin": os.urandom(400_000)})
        answer = await upload(client, archive)
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "request_too_large"
        assert answer.json()["limit_bytes"] == 300_000
        assert kept(settings) == []
        direct = await client.post(
            f"{API}/jobs",
            json={"manifest": pipeline_manifest(), "payloads": {"big.txt": "x" * 260_000}},
        )
        assert direct.status_code == 413
        assert direct.json()["limit_bytes"] == 250_000
        assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_an_unexpected_failure_is_a_problem_with_its_request_id(
    settings: Settings,
) -> None:
    class Broken(InMemoryRuntime):
        async def list_jobs(self, limit: int, include_terminal: bool) -> Any:
            raise RuntimeError("boom at /srv/secret/path with token s3cr3t")

    async with asgi_client(settings, Broken(), lifespan=True) as client:
        response = await client.get(f"{API}/jobs", headers={"X-Request-ID": "req-500"})
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["x-request-id"] == "req-500"
        assert "connection" not in response.headers  # the connection stays usable
        problem = response.json()
        assert problem["error"] == "internal_error" and problem["request_id"] == "req-500"
        assert "boom" not in response.text and "/srv" not in response.text
        assert (await client.get(f"{API}/health")).status_code == 200


async def test_expired_records_are_purged_without_traffic(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        purge_interval_seconds=0.05, bundle_ttl_seconds=0.2, idempotency_ttl_seconds=0.2
    )
    async with asgi_client(settings, InMemoryRuntime(step_seconds=0.002), lifespan=True) as c:
        assert (await upload(c, make_zip({"manifest.json": MANIFEST}))).status_code == 201
        await c.post(
            f"{API}/jobs", json={"manifest": pipeline_manifest()}, headers={"Idempotency-Key": "k"}
        )
        assert len(kept(settings)) == 1
        store = c._transport.app.state.container.idempotency_store()  # type: ignore[attr-defined]

        async def records() -> int:
            return await store._db.run(
                lambda db: db.execute("SELECT COUNT(*) FROM idempotency").fetchone()[0]
            )

        assert await records() == 1
        # Each store is purged when its own records expire, with no request coming in.
        await eventually(lambda: kept(settings) == [], within=5)
        await eventually(lambda: _none(records()), within=5)
        again = await store.claim("k-fresh", "fp", 60, 60)
        assert again.won and await records() == 1  # only the claim just taken


def test_staging_folders_of_a_dead_process_go_at_startup(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".staging-{gone.stdout.strip()}-bnd_{'0' * 32}"
    alive = tmp_path / f".staging-{os.getpid()}-bnd_{'1' * 32}"
    for folder in (dead, alive):
        (folder / "content").mkdir(parents=True)
    FilesystemBundleStore(tmp_path, Limits(10, 10_000), ttl_seconds=60)
    assert not dead.exists()
    assert alive.exists()  # still being written by a live process


def test_query_strings_never_reach_a_log_line() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s"',
        ("POST", "https://bot:s3cr3t@hooks.example.com/in?token=s3cr3t&x=1", "HTTP/1.1 204"),
        None,
    )
    without_secrets(record)
    assert record.getMessage() == (
        'HTTP Request: POST https://hooks.example.com/in?redacted "HTTP/1.1 204"'
    )
    try:
        raise ValueError("/srv/secret/path")
    except ValueError as error:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, (ValueError, error, None)
        )
    without_secrets(failed)
    assert failed.exc_info is None and failed.getMessage() == "failed (ValueError)"


async def _none(count: Any) -> bool:
    return await count == 0
