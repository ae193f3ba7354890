"""Reading blueprint folders of the host: never through a link, never a FIFO, socket or
device, within the bundle limits; and the bounded pool the reading runs on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mn_api.adapters import host_files
from mn_api.adapters.blueprints import FolderBlueprints
from mn_api.adapters.bounded_pool import BoundedPool
from mn_api.adapters.host_files import Kind, Refused, open_dir, open_file, read_blueprint
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    BlueprintReadsBusyError,
    BundleRejectedError,
    LaunchPathNotRegularError,
)
from tests.support import pipeline_manifest

LIMITS = Limits(max_files=100, max_bytes=64 * 1024)
MISSING = BlueprintNotFoundError("no manifest")


def _blueprint(folder: Path, payloads: dict[str, bytes] | None = None) -> Path:
    (folder / "payloads").mkdir(parents=True)
    (folder / "manifest.json").write_bytes(orjson.dumps(pipeline_manifest()))
    for name, data in (payloads or {}).items():
        (folder / "payloads" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "payloads" / name).write_bytes(data)
    return folder


@pytest.fixture
def fd_of() -> Iterator[object]:
    opened: list[int] = []

    def open_folder(path: Path) -> int:
        opened.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
        return opened[-1]

    yield open_folder
    for fd in opened:
        os.close(fd)


def _read(fd_of, folder: Path, limits: Limits = LIMITS):
    return read_blueprint(fd_of(folder), limits, MISSING)


def test_a_folder_is_read_with_its_payloads(tmp_path: Path, fd_of) -> None:
    folder = _blueprint(tmp_path / "bp", {"a.txt": b"a", "deep/b.txt": b"bb"})
    contents = _read(fd_of, folder)
    assert contents.payloads == {"a.txt": b"a", "deep/b.txt": b"bb"}
    assert orjson.loads(contents.manifest_json) == pipeline_manifest()


def test_a_fifo_in_payloads_is_refused_without_being_opened(tmp_path: Path, fd_of) -> None:
    folder = _blueprint(tmp_path / "bp", {"a.txt": b"a"})
    os.mkfifo(folder / "payloads" / "pipe")  # no writer: opening it blocking would hang
    with pytest.raises(LaunchPathNotRegularError):
        _read(fd_of, folder)


def test_a_socket_in_payloads_is_refused(tmp_path: Path, fd_of) -> None:
    folder = _blueprint(tmp_path / "bp")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "payloads" / "sock"))
        with pytest.raises(LaunchPathNotRegularError):
            _read(fd_of, folder)


@pytest.mark.parametrize(
    ("where", "leads_to"),
    [
        ("payloads/in.txt", "payloads/secret"),
        ("manifest.json", "manifest.json"),
        ("payloads", "payloads"),
    ],
)
def test_a_link_anywhere_in_the_blueprint_is_refused(
    tmp_path: Path, fd_of, where: str, leads_to: str
) -> None:
    folder = _blueprint(tmp_path / "bp", {"a.txt": b"a"})
    outside = _blueprint(tmp_path / "outside", {"secret": b"s"})
    if (folder / where).is_dir():
        os.rename(folder / where, tmp_path / "moved")
    elif (folder / where).exists():
        (folder / where).unlink()
    os.symlink(outside / leads_to, folder / where)
    with pytest.raises(BundleRejectedError) as refused:
        _read(fd_of, folder)
    assert refused.value.code == "bundle_symlink"


def test_a_folder_is_held_to_the_file_limit_folders_included(tmp_path: Path, fd_of) -> None:
    folder = _blueprint(tmp_path / "bp")
    for n in range(20_000):
        (folder / "payloads" / f"d{n}").mkdir()
    with pytest.raises(BundleRejectedError) as refused:
        _read(fd_of, folder, Limits(max_files=10_000, max_bytes=1 << 20))
    assert refused.value.code == "bundle_too_many_files"


def test_folders_nest_only_so_deep(tmp_path: Path, fd_of) -> None:
    folder = _blueprint(tmp_path / "bp")
    deep = folder / "payloads" / "/".join(["d"] * (host_files.MAX_DEPTH + 1))
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"f")
    with pytest.raises(BundleRejectedError) as refused:
        _read(fd_of, folder)
    assert refused.value.code == "bundle_invalid_path"


def test_an_oversized_manifest_is_refused_before_it_is_read(
    tmp_path: Path, fd_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _blueprint(tmp_path / "bp")
    os.truncate(folder / "manifest.json", 200 * 1024 * 1024)  # sparse: costs no disk
    read: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: read.append(n) or real_read(fd, n))
    with pytest.raises(BundleRejectedError) as refused:
        _read(fd_of, folder)
    assert refused.value.code == "bundle_too_large"
    assert read == []


def test_bytes_are_counted_as_read_not_as_stat_says(tmp_path: Path, fd_of) -> None:
    """A file that grows after fstat is still stopped one byte past the budget."""
    folder = _blueprint(tmp_path / "bp")
    big = folder / "payloads" / "grows"
    big.write_bytes(b"x")
    fd = os.open(big, os.O_RDONLY)
    try:
        big.write_bytes(b"x" * 10_000)
        assert host_files.read_at_most(fd, 1, 5_000) is None
    finally:
        os.close(fd)


def test_a_fifo_swapped_in_after_the_check_is_refused_not_waited_on(
    tmp_path: Path, fd_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(tmp_path / "pipe")
    monkeypatch.setattr(host_files, "kind_at", lambda *_: Kind.FILE)  # the check saw a file
    with pytest.raises(Refused) as refused:
        open_file(fd_of(tmp_path), "pipe")
    assert refused.value.kind is Kind.OTHER


def test_a_link_swapped_in_after_the_check_is_not_followed(
    tmp_path: Path, fd_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"f")
    os.symlink(tmp_path / "real", tmp_path / "dir-link")
    os.symlink(tmp_path / "real" / "f", tmp_path / "file-link")
    monkeypatch.setattr(host_files, "kind_at", lambda *_: Kind.FILE)
    with pytest.raises(Refused) as refused:
        open_file(fd_of(tmp_path), "file-link")
    assert refused.value.kind is Kind.LINK
    monkeypatch.undo()  # a folder opens straight away, without following a link either
    with pytest.raises(Refused) as refused:
        open_dir(fd_of(tmp_path), "dir-link")
    assert refused.value.kind is Kind.LINK


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path: Path, fd_of) -> None:
    with pytest.raises(Refused) as refused:
        open_dir(fd_of(tmp_path), "n" * 300)
    assert refused.value.kind is Kind.LONG_NAME


async def test_the_listing_reads_no_link_and_no_manifest_over_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    _blueprint(catalog / "plain")
    outside = _blueprint(tmp_path / "outside")
    (outside / "manifest.json").write_bytes(orjson.dumps({"metadata": {"name": "Outside"}}))
    (catalog / "linked").mkdir()
    os.symlink(outside / "manifest.json", catalog / "linked" / "manifest.json")
    os.symlink(outside, catalog / "linked-folder")
    big = _blueprint(catalog / "big")
    padding = "p" * (2 * 1024 * 1024)
    (big / "manifest.json").write_text(f'{{"metadata": {{"name": "Big"}}, "pad": "{padding}"}}')
    source = FolderBlueprints(catalog, (), LIMITS)
    listed = {b.id: b.name for b in await source.catalog()}
    assert listed == {"plain": "three steps", "big": "big"}  # "big": listed, unread


async def test_the_listing_reads_a_bounded_number_of_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mn_api.adapters import blueprints

    catalog = tmp_path / "catalog"
    for n in range(6):
        folder = _blueprint(catalog / f"b{n}")
        (folder / "manifest.json").write_bytes(orjson.dumps({"metadata": {"name": f"N{n}"}}))
    size = (catalog / "b0" / "manifest.json").stat().st_size
    monkeypatch.setattr(blueprints, "LISTING_BYTES", 3 * size)
    names = sorted(b.name for b in await FolderBlueprints(catalog, (), LIMITS).catalog())
    assert names == ["N0", "N1", "N2", "b3", "b4", "b5"]


async def test_the_pool_refuses_work_beyond_its_threads_and_queue() -> None:
    pool = BoundedPool(workers=1, waiting=1, name="test-pool")
    release = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(lambda: release.wait(30)))
        waiting = asyncio.ensure_future(pool.run(lambda: "second"))
        await asyncio.sleep(0)
        with pytest.raises(BlueprintReadsBusyError):
            await pool.run(lambda: "third")
        release.set()
        assert await running is True and await waiting == "second"
        assert pool.held == 0
        assert await pool.run(lambda: "again") == "again"
    finally:
        release.set()
        pool.close()


async def test_a_slot_is_held_until_abandoned_work_ends_and_its_result_is_handed_over() -> None:
    pool = BoundedPool(workers=1, waiting=0, name="test-pool")
    release = threading.Event()
    handed: list[str] = []
    done = threading.Event()

    def work() -> str:
        release.wait(30)
        return "file"

    try:
        caller = asyncio.ensure_future(
            pool.run(work, abandoned=lambda r: (handed.append(r), done.set()))
        )
        await asyncio.sleep(0.05)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        with pytest.raises(BlueprintReadsBusyError):  # the work still runs: its slot is held
            await pool.run(lambda: "other")
        release.set()
        assert await asyncio.to_thread(done.wait, 30)
        assert handed == ["file"] and pool.held == 0
    finally:
        release.set()
        pool.close()
