"""Launching jobs as Web UI 1.2.5 does: from the catalogue, from a path, from an uploaded
bundle; the launch's progress; the catalogue listing, models and run pages."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from tests.support import asgi_client, check_problem, make_zip, pipeline_manifest

API = "/api/v1"


def _blueprint(folder: Path, manifest: dict[str, Any], payloads: dict[str, bytes]) -> Path:
    (folder / "payloads").mkdir(parents=True)
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    for name, data in payloads.items():
        target = folder / "payloads" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    manifest = {**pipeline_manifest(), "metadata": {"name": "Three steps", "description": "d"}}
    _blueprint(root / "demos" / "pipeline", manifest, {"inputs/a.txt": b"alpha"})
    _blueprint(root / "plain", pipeline_manifest(), {})
    (root / "not-a-blueprint").mkdir()
    return root


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A launch root beside the catalogue, and a folder outside every root."""
    root = tmp_path / "launch-root"
    _blueprint(root / "mine", pipeline_manifest(), {"x.txt": b"x"})
    (root / "bundle.zip").write_bytes(
        make_zip({"manifest.json": orjson.dumps(pipeline_manifest()), "payloads/z.txt": b"z"})
    )
    _blueprint(tmp_path / "outside", pipeline_manifest(), {})
    return root


@pytest.fixture
async def client(
    settings_factory: Callable[..., Settings],
    memory_runtime: InMemoryRuntime,
    catalog: Path,
    elsewhere: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(blueprint_dir=catalog, launch_roots_raw=str(elsewhere))
    async with asgi_client(settings, memory_runtime) as client:
        yield client


async def _launch(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/blueprints/launch/runs", json={"version": 1, **body})


async def test_the_catalogue_lists_each_blueprint_without_server_paths(
    client: httpx.AsyncClient, catalog: Path
) -> None:
    listing = (await client.get(f"{API}/blueprints")).json()
    assert listing["blueprints"] == [
        {"id": "plain", "name": "three steps", "description": ""},
        {"id": "demos/pipeline", "name": "Three steps", "description": "d", "category": "demos"},
    ]
    assert listing["categories"] == [{"id": "demos", "name": "demos", "count": 1}]
    assert str(catalog) not in str(listing)


async def test_without_a_catalogue_the_listing_is_empty(
    settings_factory: Callable[..., Settings], memory_runtime: InMemoryRuntime
) -> None:
    async with asgi_client(settings_factory(), memory_runtime) as client:
        assert (await client.get(f"{API}/blueprints")).json() == {
            "blueprints": [],
            "categories": [],
        }
        refused = await _launch(client, source="path", path="/etc")
        assert refused.status_code == 403
        assert check_problem(refused.json())["error"] == "path_not_allowed"


async def test_a_catalogue_launch_submits_the_blueprint_with_its_payloads(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    answer = await _launch(client, source="catalog", blueprint_id="demos/pipeline",
                           progress_id="launch-one")  # fmt: skip
    assert answer.status_code == 201, answer.text
    launch = answer.json()
    job_id = launch["job_id"]
    assert launch["id"] == job_id and launch["status"] == "completed" and launch["completed"]
    assert launch["progress_id"] == "launch-one"
    assert launch["blueprint"]["name"] == "Three steps"
    assert answer.headers["location"] == f"{API}/jobs/{job_id}"
    assert [(p["id"], p["status"]) for p in launch["phases"]] == [
        ("resolve_source", "completed"),
        ("requirements", "skipped"),
        ("model_install", "skipped"),
        ("validation", "completed"),
        ("submit", "completed"),
        ("open_job_progress", "completed"),
    ]
    assert memory_runtime.payload_keys(job_id) == ["inputs/a.txt"]
    polled = (await client.get(f"{API}/blueprints/launch/progress/launch-one")).json()
    assert polled["job_id"] == job_id and polled["status"] == "completed"
    # The same progress id again: the same launch, no second job.
    again = (await _launch(client, source="catalog", blueprint_id="demos/pipeline",
                           progress_id="launch-one")).json()  # fmt: skip
    assert again["job_id"] == job_id
    assert len((await client.get(f"{API}/jobs")).json()["data"]) == 1


@pytest.mark.parametrize("name", ["mine", "mine/manifest.json", "bundle.zip"])
async def test_a_path_under_a_launch_root_is_launched(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, elsewhere: Path, name: str
) -> None:
    answer = await _launch(client, source="path", path=str(elsewhere / name))
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    expected = ["z.txt"] if name.endswith(".zip") else ["x.txt"]
    assert memory_runtime.payload_keys(job_id) == expected


async def test_paths_outside_the_roots_never_reach_the_runtime(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime, elsewhere: Path, tmp_path: Path
) -> None:
    os.symlink(tmp_path / "outside", elsewhere / "link-out")
    for path in (
        str(tmp_path / "outside"),
        str(elsewhere / ".." / "outside"),
        str(elsewhere / "link-out"),
        "relative/path",
        "/etc/passwd",
    ):
        answer = await _launch(client, source="path", path=path, progress_id="bad")
        assert answer.status_code == 403, (path, answer.text)
        problem = check_problem(answer.json())
        assert problem["error"] == "path_not_allowed"
        assert str(tmp_path) not in answer.text  # no server path in the answer
        failed = (await client.get(f"{API}/blueprints/launch/progress/bad")).json()
        assert failed["status"] == "failed" and failed["completed"] and failed["error"]
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"source": "catalog", "blueprint_id": "nope"}, 404, "blueprint_not_found"),
        ({"source": "catalog", "blueprint_id": "../catalog/plain"}, 404, "blueprint_not_found"),
        ({"source": "catalog"}, 422, "validation_error"),
        ({"source": "bundle", "_bundle_path": "bnd_" + "0" * 32}, 404, "bundle_not_found"),
        ({"source": "ftp", "path": "x"}, 422, "validation_error"),
        ({"source": "catalog", "blueprint_id": "plain", "progress_id": "a b"}, 422,
         "validation_error"),
        ({"source": "catalog", "blueprint_id": "plain", "config_overrides": {"a": 1}}, 422,
         "validation_error"),
    ],
)  # fmt: skip
async def test_bad_launches_are_readable_problems(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    answer = await _launch(client, **body)
    assert answer.status_code == status, answer.text
    problem = check_problem(answer.json())
    assert problem["error"] == code
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_an_invalid_manifest_fails_the_launch_at_validation(
    client: httpx.AsyncClient, catalog: Path
) -> None:
    _blueprint(catalog / "broken", {**pipeline_manifest(), "entrypoints": ["ghost"]}, {})
    answer = await _launch(client, source="catalog", blueprint_id="broken", progress_id="b1")
    assert answer.status_code == 422
    assert check_problem(answer.json())["error"] == "manifest_invalid"
    progress = (await client.get(f"{API}/blueprints/launch/progress/b1")).json()
    assert progress["status"] == "failed" and "ghost" in progress["error"]
    assert {p["id"]: p["status"] for p in progress["phases"]}["submit"] == "failed"


async def test_a_bundle_uploaded_then_launched(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    archive = make_zip({"manifest.json": orjson.dumps(pipeline_manifest()), "payloads/q": b"q"})
    upload = await client.post(
        f"{API}/bundles/upload", files={"bundle": ("b.zip", archive, "application/zip")}
    )
    assert upload.status_code in (200, 201), upload.text
    answer = await _launch(client, source="bundle", _bundle_path=upload.json()["bundle_path"])
    assert answer.status_code == 201, answer.text
    assert memory_runtime.payload_keys(answer.json()["job_id"]) == ["q"]


async def test_unknown_progress_models_and_run_pages(client: httpx.AsyncClient) -> None:
    unknown = await client.get(f"{API}/blueprints/launch/progress/never")
    assert unknown.status_code == 404
    assert check_problem(unknown.json())["error"] == "launch_not_found"
    assert (await client.get(f"{API}/models")).json()["models"] == []
    run = await client.get(f"{API}/runs/r-1/ui")
    assert run.status_code == 404
    assert "workflow-progress" in check_problem(run.json())["errors"][0]["message"]
