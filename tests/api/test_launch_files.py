"""Launches from host files that fight back: FIFOs, sockets, links swapped in while a
launch reads, oversized manifests, long names, folders and ZIPs of too many entries, and
more reads at once than the gateway takes on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mn_api.adapters import blueprints as folder_blueprints
from mn_api.adapters.blueprints import FolderBlueprints
from mn_api.adapters.bundles import archive
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.domain.bundle_rules import Limits
from tests.support import asgi_client, check_problem, make_zip, pipeline_manifest
from tests.support import zip_of_many_entries as many_entries

API = "/api/v1"
# A bound on waiting, so that a launch that would hang fails the test instead.
PROMPTLY = 30


def _blueprint(folder: Path, payloads: Mapping[str, bytes], graph_id: str = "inside") -> Path:
    (folder / "payloads").mkdir(parents=True)
    (folder / "manifest.json").write_bytes(
        orjson.dumps({**pipeline_manifest(), "graph_id": graph_id})
    )
    for name, data in payloads.items():
        (folder / "payloads" / name).write_bytes(data)
    return folder


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    catalog = tmp_path / "catalog"
    _blueprint(catalog / "plain", {"inside.txt": b"inside"})
    root = tmp_path / "root"
    _blueprint(root / "bp", {"inside.txt": b"inside"})
    zipped = {"manifest.json": orjson.dumps(pipeline_manifest()), "payloads/inside.txt": b"i"}
    (root / "bundle.zip").write_bytes(make_zip(zipped))
    outside = _blueprint(tmp_path / "outside", {"secret": b"SECRET"}, graph_id="outside")
    zipped = {"manifest.json": orjson.dumps(pipeline_manifest()), "payloads/outside.txt": b"o"}
    (outside / "outside.zip").write_bytes(make_zip(zipped))
    return {"catalog": catalog, "root": root, "outside": outside}


@pytest.fixture
def submitted(memory_runtime: InMemoryRuntime) -> list[tuple[str, dict[str, bytes]]]:
    """Every manifest and payloads the runtime was sent."""
    sent: list[tuple[str, dict[str, bytes]]] = []
    submit = memory_runtime.submit_job

    async def recorded(manifest_json: str, payloads: Mapping[str, bytes]) -> Any:
        sent.append((manifest_json, dict(payloads)))
        return await submit(manifest_json, payloads)

    memory_runtime.submit_job = recorded  # type: ignore[method-assign]
    return sent


@pytest.fixture
def make_client(
    settings_factory: Callable[..., Settings],
    memory_runtime: InMemoryRuntime,
    places: dict[str, Path],
) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        settings = settings_factory(
            blueprint_dir=places["catalog"], launch_roots_raw=str(places["root"]), **overrides
        )
        return asgi_client(settings, memory_runtime)

    return build


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client


async def _launch(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    call = client.post(f"{API}/blueprints/launch/runs", json={"version": 1, **body})
    return await asyncio.wait_for(call, PROMPTLY)


def _code(answer: httpx.Response) -> tuple[int, str]:
    if answer.status_code == 201:
        return 201, ""
    return answer.status_code, check_problem(answer.json())["error"]


async def test_a_fifo_in_payloads_is_refused_at_once_and_the_loop_keeps_serving(
    client: httpx.AsyncClient, places: dict[str, Path]
) -> None:
    os.mkfifo(places["root"] / "bp" / "payloads" / "pipe")  # no writer ever comes
    os.mkfifo(places["catalog"] / "plain" / "payloads" / "pipe")
    launched, health = await asyncio.gather(
        _launch(client, source="path", path=str(places["root"] / "bp"), progress_id="f1"),
        asyncio.wait_for(client.get(f"{API}/health"), PROMPTLY),
    )
    assert health.status_code == 200
    assert _code(launched) == (400, "launch_path_not_regular")
    progress = (await client.get(f"{API}/blueprints/launch/progress/f1")).json()
    assert progress["status"] == "failed" and progress["error"]
    catalogued = await _launch(client, source="catalog", blueprint_id="plain")
    assert _code(catalogued) == (400, "launch_path_not_regular")
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_a_fifo_or_socket_at_the_launch_path_is_refused(
    client: httpx.AsyncClient, places: dict[str, Path]
) -> None:
    root = places["root"]
    os.mkfifo(root / "pipe.zip")
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock.zip"))
        for name in ("pipe.zip", "pipe", "sock.zip"):
            answer = await _launch(client, source="path", path=str(root / name))
            assert _code(answer) == (400, "launch_path_not_regular"), name
            assert str(root) not in answer.text


@contextmanager
def flipping(target: Path, states: list[Callable[[Path], None]]) -> Iterator[None]:
    """Swap `target` through `states` (each makes a new entry at the path it is given, then
    renamed over `target` at once) on a thread, for as long as the block runs."""
    stop = threading.Event()

    def flip() -> None:
        n = 0
        while not stop.is_set():
            staged = target.with_name(f".staged-{n}")
            states[n % len(states)](staged)
            os.replace(staged, target)
            n += 1

    thread = threading.Thread(target=flip)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def test_a_zip_swapped_for_a_link_or_a_fifo_never_submits_what_is_outside(
    client: httpx.AsyncClient,
    places: dict[str, Path],
    submitted: list[tuple[str, dict[str, bytes]]],
) -> None:
    root, kept = places["root"], places["root"] / "kept.zip"
    os.link(root / "bundle.zip", kept)
    states = [
        lambda at: os.link(kept, at),
        lambda at: os.symlink(places["outside"] / "outside.zip", at),
        lambda at: os.mkfifo(at),
    ]
    answers = set()
    with flipping(root / "bundle.zip", states):
        for _ in range(60):
            answers.add(_code(await _launch(client, source="path", path=str(root / "bundle.zip"))))
    assert answers <= {(201, ""), (403, "path_not_allowed"), (400, "launch_path_not_regular")}
    # Whatever the race let through, the zip launches once it stays put.
    os.replace(kept, root / "bundle.zip")
    assert _code(await _launch(client, source="path", path=str(root / "bundle.zip"))) == (201, "")
    assert submitted and all(list(payloads) == ["inside.txt"] for _, payloads in submitted)


async def test_a_manifest_or_payload_swapped_for_a_link_never_submits_what_is_outside(
    client: httpx.AsyncClient,
    places: dict[str, Path],
    submitted: list[tuple[str, dict[str, bytes]]],
) -> None:
    bp, outside = places["root"] / "bp", places["outside"]
    (bp / "kept.json").write_bytes((bp / "manifest.json").read_bytes())
    manifest_states = [
        lambda at: os.link(bp / "kept.json", at),
        lambda at: os.symlink(outside / "manifest.json", at),
    ]
    payload_states = [
        lambda at: at.write_bytes(b"inside"),
        lambda at: os.symlink(outside / "payloads" / "secret", at),
    ]
    answers = set()
    with (
        flipping(bp / "manifest.json", manifest_states),
        flipping(bp / "payloads" / "inside.txt", payload_states),
    ):
        for _ in range(60):
            answers.add(_code(await _launch(client, source="path", path=str(bp))))
    assert answers <= {(201, ""), (400, "bundle_symlink"), (404, "blueprint_not_found")}
    os.replace(bp / "kept.json", bp / "manifest.json")
    (bp / "payloads" / "inside.txt").unlink()
    (bp / "payloads" / "inside.txt").write_bytes(b"inside")
    assert _code(await _launch(client, source="path", path=str(bp))) == (201, "")
    assert submitted
    for manifest_json, payloads in submitted:
        assert orjson.loads(manifest_json)["graph_id"] == "inside"
        assert b"SECRET" not in payloads.values()


async def test_an_oversized_manifest_is_refused_unread_and_listed_unread(
    client: httpx.AsyncClient, places: dict[str, Path]
) -> None:
    for folder in (places["root"] / "bp", places["catalog"] / "plain"):
        os.truncate(folder / "manifest.json", 200 * 1024 * 1024)  # sparse: no disk used
    answer = await _launch(client, source="path", path=str(places["root"] / "bp"))
    assert _code(answer) == (413, "request_too_large")  # more than one submission carries
    answer = await _launch(client, source="catalog", blueprint_id="plain")
    assert _code(answer) == (413, "request_too_large")
    listing = (await client.get(f"{API}/blueprints")).json()["blueprints"]
    assert listing == [{"id": "plain", "name": "plain", "description": ""}]


async def test_the_listing_shows_nothing_a_link_leads_to(
    client: httpx.AsyncClient, places: dict[str, Path]
) -> None:
    catalog, outside = places["catalog"], places["outside"]
    (catalog / "linked").mkdir()
    os.symlink(outside / "manifest.json", catalog / "linked" / "manifest.json")
    os.symlink(outside, catalog / "folder-link")
    listing = (await client.get(f"{API}/blueprints")).json()["blueprints"]
    assert [b["id"] for b in listing] == ["plain"]
    for blueprint_id in ("folder-link", "linked"):
        answer = await _launch(client, source="catalog", blueprint_id=blueprint_id)
        assert answer.status_code in (400, 404) and _code(answer)[1] in (
            "blueprint_not_found",
            "bundle_symlink",
        )


async def test_a_name_too_long_for_the_file_system_is_a_readable_problem(
    client: httpx.AsyncClient, places: dict[str, Path]
) -> None:
    path = str(places["root"] / ("n" * 300) / "manifest.json")
    answer = await _launch(client, source="path", path=path, progress_id="long")
    assert _code(answer) == (400, "bundle_invalid_path")
    assert (await client.get(f"{API}/blueprints/launch/progress/long")).json()["status"] == (
        "failed"
    )
    answer = await _launch(client, source="catalog", blueprint_id="c/" + "n" * 300)
    assert _code(answer) == (404, "blueprint_not_found")


async def test_folders_and_zips_are_held_to_the_entry_limit(
    make_client: Callable[..., Any],
    places: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = places["root"]
    for n in range(60):
        (root / "bp" / "payloads" / f"d{n}").mkdir()
    (root / "many.zip").write_bytes(many_entries(1_000))

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("zipfile read a directory of too many entries")

    monkeypatch.setattr(archive.zipfile, "ZipFile", never)
    async with make_client(bundle_max_files=50) as client:
        for name in ("bp", "many.zip"):
            answer = await _launch(client, source="path", path=str(root / name))
            assert _code(answer) == (400, "bundle_too_many_files"), name


async def test_reads_beyond_the_pool_and_its_queue_are_refused_with_503(
    settings_factory: Callable[..., Settings],
    memory_runtime: InMemoryRuntime,
    places: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    read = folder_blueprints.read_blueprint

    def slow_read(*args: Any) -> Any:
        release.wait(PROMPTLY)
        return read(*args)

    monkeypatch.setattr(folder_blueprints, "read_blueprint", slow_read)
    settings = settings_factory(blueprint_dir=places["catalog"])
    source = FolderBlueprints(places["catalog"], (), Limits(100, 1 << 20), readers=1, waiting=1)
    async with asgi_client(settings, memory_runtime, blueprints=source) as client:
        first = asyncio.ensure_future(_launch(client, source="catalog", blueprint_id="plain"))
        second = asyncio.ensure_future(_launch(client, source="catalog", blueprint_id="plain"))
        async with asyncio.timeout(PROMPTLY):
            # One read running, one waiting: the pool's count is all there is to watch.
            while source._pool.held < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        try:
            busy = await _launch(client, source="catalog", blueprint_id="plain")
            listing = await client.get(f"{API}/blueprints")
        finally:
            release.set()
        for refused in (busy, listing):
            assert _code(refused) == (503, "blueprints_busy")
            assert refused.headers["retry-after"]
        assert _code(await first) == _code(await second) == (201, "")
        assert (await client.get(f"{API}/blueprints")).status_code == 200
