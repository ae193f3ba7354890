"""Bundle uploads: the archive rules, submission by id, expiry, and nothing left behind."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import httpx
import orjson
import pytest
from dependency_injector import providers

from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import Container
from mn_api.domain.bundle_rules import Limits
from tests.support import FakeClock, make_zip, pipeline_manifest

API = "/api/v1"
MANIFEST = orjson.dumps(pipeline_manifest())


async def _upload(client: httpx.AsyncClient, archive: bytes, **params: str) -> httpx.Response:
    return await client.post(
        f"{API}/bundles/upload",
        params=params,
        files={"bundle": ("bundle.zip", archive, "application/zip")},
    )


def _stored(settings: Settings) -> list[Path]:
    """Bundles and staging folders: what uploads leave (the state file lives there too)."""
    root = settings.bundle_dir
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith("state.sqlite3"))


async def test_upload_stores_a_bundle_and_answers_an_opaque_id(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    archive = make_zip(
        {"manifest.json": MANIFEST, "payloads/in/a.txt": "hello", "payloads/b.bin": b"\x00\x01"}
    )
    response = await _upload(client, archive)
    assert response.status_code == 201
    body = response.json()
    assert body["bundle_id"] == body["bundle_path"] and body["bundle_id"].startswith("bnd_")
    assert body["manifest"]["graph_id"] == "pipeline"
    assert body["files"] == 3 and body["bytes"] == len(MANIFEST) + 7
    assert "job_id" not in body
    assert str(settings.bundle_dir) not in response.text


async def test_a_bundle_in_one_top_folder_submits_with_its_payloads(
    client: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    archive = make_zip({"job/manifest.json": MANIFEST, "job/payloads/in/a.txt": "hello"})
    response = await _upload(client, archive, submit="true")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert memory_runtime.payload_keys(body["job_id"]) == ["in/a.txt"]
    memory_runtime.run_until_idle()
    assert (await client.get(f"{API}/jobs/{body['job_id']}")).json()["job"]["status"] == (
        "completed"
    )


@pytest.mark.parametrize("field", ["bundle_id", "_bundle_path"])
async def test_an_uploaded_bundle_is_submitted_by_id(client: httpx.AsyncClient, field: str) -> None:
    bundle_id = (await _upload(client, make_zip({"manifest.json": MANIFEST}))).json()["bundle_id"]
    response = await client.post(f"{API}/jobs", json={field: bundle_id})
    assert response.status_code == 201 and response.json()["status"] == "pending"


@pytest.mark.parametrize("bundle_id", ["bnd_" + "0" * 32, "../../etc", "bnd_zz"])
async def test_unknown_bundles_are_404(client: httpx.AsyncClient, bundle_id: str) -> None:
    response = await client.post(f"{API}/jobs", json={"bundle_id": bundle_id})
    assert response.status_code == 404 and response.json()["error"] == "bundle_not_found"


@pytest.fixture
def store_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def container(container: Container, settings: Settings, store_clock: FakeClock) -> Container:
    """The usual container, with a bundle store on a clock the tests move."""
    store = FilesystemBundleStore(settings.bundle_dir, Limits(5, 200 << 20), 60, store_clock)
    container.bundle_store.override(providers.Object(store))
    return container


async def test_expired_bundles_are_gone(
    client: httpx.AsyncClient, settings: Settings, store_clock: FakeClock
) -> None:
    bundle_id = (await _upload(client, make_zip({"manifest.json": MANIFEST}))).json()["bundle_id"]
    store_clock.advance(61)
    response = await client.post(f"{API}/jobs", json={"bundle_id": bundle_id})
    assert response.status_code == 404
    assert _stored(settings) == []


def _bomb(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", MANIFEST)
        with zf.open("payloads/zeros.bin", "w", force_zip64=True) as member:
            chunk = b"\x00" * (1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)
    return buffer.getvalue()


def _lying(archive: bytes, member: str, claimed: int) -> bytes:
    """Rewrite the sizes a member's headers declare, leaving its data as it was."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.getinfo(member)
    local = info.header_offset
    data[local + 22 : local + 26] = claimed.to_bytes(4, "little")
    central = data.find(b"PK\x01\x02" + data[local + 4 : local + 6])
    while central != -1:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == member.encode():
            data[central + 24 : central + 28] = claimed.to_bytes(4, "little")
            break
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ({"payloads/a.txt": "x"}, "bundle_manifest_missing"),
        ({"a/manifest.json": MANIFEST, "b/x": "y"}, "bundle_manifest_missing"),
        ({"manifest.json": "[1, 2]"}, "bundle_manifest_invalid"),
        ({"manifest.json": "{nope"}, "bundle_manifest_invalid"),
        ({"manifest.json": MANIFEST, "../evil.txt": "x"}, "bundle_path_traversal"),
        ({"manifest.json": MANIFEST, "payloads/../../evil": "x"}, "bundle_path_traversal"),
        ({"manifest.json": MANIFEST, "/etc/cron.d/evil": "x"}, "bundle_absolute_path"),
        ({"manifest.json": MANIFEST, "payloads\\evil.txt": "x"}, "bundle_backslash_path"),
    ],
)
async def test_unsafe_or_incomplete_bundles_are_refused_and_leave_nothing(
    client: httpx.AsyncClient, settings: Settings, members: dict, code: str
) -> None:
    response = await _upload(client, make_zip(members))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code
    assert _stored(settings) == []


async def test_symlink_members_are_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    archive = make_zip({"manifest.json": MANIFEST}, symlinks={"payloads/passwd": "/etc/passwd"})
    response = await _upload(client, archive)
    assert response.status_code == 400 and response.json()["error"] == "bundle_symlink"
    assert _stored(settings) == []


async def test_a_file_that_is_not_a_zip_is_refused(client: httpx.AsyncClient) -> None:
    response = await _upload(client, b"just some text, no archive here")
    assert response.status_code == 400 and response.json()["error"] == "not_a_zip"


async def test_a_missing_bundle_field_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/bundles/upload", files={"other": ("a.zip", b"x")})
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


async def test_too_many_members_are_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    members = {"manifest.json": MANIFEST, **{f"payloads/{i}.txt": "x" for i in range(5)}}
    response = await _upload(client, make_zip(members))
    assert response.status_code == 400 and response.json()["error"] == "bundle_too_many_files"
    assert _stored(settings) == []


async def test_a_zip_bomb_is_refused_without_memory_or_disk_growing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    archive = _bomb(300 << 20)
    assert len(archive) < 1 << 20  # some hundred kilobytes that expand to 300 MB
    tracemalloc.start()
    try:
        response = await _upload(client, archive)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400 and response.json()["error"] == "bundle_too_large"
    assert peak < 20 << 20
    assert _stored(settings) == []


async def test_a_bomb_whose_headers_lie_is_refused_while_extracting(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    archive = _lying(_bomb(200 << 20), "payloads/zeros.bin", 1000)
    response = await _upload(client, archive)
    assert response.status_code == 400
    assert response.json()["error"] in {"bundle_corrupt", "bundle_too_large"}
    assert _stored(settings) == []
