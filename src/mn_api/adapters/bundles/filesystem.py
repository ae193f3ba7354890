"""FilesystemBundleStore: bundles checked, unpacked and kept as folders on local disk."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from mn_api.adapters.bundles.archive import read_contents, unpack
from mn_api.application.ports import BundleContents, BundleStore, StoredBundle
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import (
    BundleNotFoundError,
    BundleStoreUnavailableError,
    DomainError,
    InsufficientStorageError,
)

BUNDLE_ID = re.compile(r"^bnd_[0-9a-f]{32}$")
_META = "meta.json"
_CONTENT = "content"
# Staging folders carry the pid of the process unpacking into them, so that what a dead
# process left behind can be told from what a live one is still writing.
_STAGING = ".staging-"
_STAGING_NAME = re.compile(r"^\.staging-(\d+)-")
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def new_bundle_id() -> str:
    return f"bnd_{secrets.token_hex(16)}"


def storage_error(err: OSError, what: str) -> DomainError:
    """The domain's word for a failure of the disk under the store."""
    if err.errno in _FULL:
        return InsufficientStorageError(f"the {what} has no room left")
    return BundleStoreUnavailableError(f"the {what} cannot be written")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_staging(root: Path) -> int:
    """Staging folders whose process is gone; how many were removed."""
    removed = 0
    if not root.is_dir():
        return 0
    for entry in root.iterdir():
        found = _STAGING_NAME.match(entry.name)
        if found is not None and not process_alive(int(found.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


class FilesystemBundleStore(BundleStore):
    """One folder per bundle under `root`; a refused upload leaves nothing behind.

    Archives are unpacked into a staging folder and renamed into place only once every
    rule holds, so a bundle is either whole or absent, for every process sharing `root`.
    Work runs in a worker thread so the event loop keeps serving other requests. With a
    quota, the bundles kept never hold more than `quota_bytes` together.
    """

    def __init__(
        self,
        root: Path,
        limits: Limits,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        quota_bytes: int | None = None,
    ) -> None:
        self._root = Path(root)
        self._limits = limits
        self._ttl = ttl_seconds
        self._clock = clock
        self._quota = quota_bytes
        self._quota_lock = threading.Lock()
        remove_abandoned_staging(self._root)

    async def save(self, archive: BinaryIO) -> StoredBundle:
        return await asyncio.to_thread(self._save, archive)

    async def load(self, bundle_id: str) -> BundleContents:
        return await asyncio.to_thread(self._load, bundle_id)

    async def purge(self) -> int:
        return await asyncio.to_thread(self._purge)

    # -- worker-thread side ----------------------------------------------------------

    def _save(self, archive: BinaryIO) -> StoredBundle:
        bundle_id = new_bundle_id()
        staging = self._root / f"{_STAGING}{os.getpid()}-{bundle_id}"
        try:
            self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
            unpacked = unpack(archive, staging / _CONTENT, self._limits)
            meta = {
                "created_at": self._clock(),
                "prefix": unpacked.prefix,
                "files": unpacked.files,
                "bytes": unpacked.bytes,
            }
            (staging / _META).write_bytes(orjson.dumps(meta))
            with self._quota_lock:
                self._check_quota(unpacked.bytes)
                os.rename(staging, self._root / bundle_id)
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise storage_error(err, "bundle store") from err
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return StoredBundle(bundle_id, unpacked.manifest, unpacked.files, unpacked.bytes)

    def _check_quota(self, adding: int) -> None:
        if self._quota is None:
            return
        used = sum(size for _entry, _created, size in self._bundles())
        if used + adding > self._quota:
            raise InsufficientStorageError(
                f"the bundle store's quota of {self._quota} bytes is used up; "
                "bundles are removed when they expire"
            )

    def _bundles(self) -> Iterator[tuple[Path, float, int]]:
        """Each kept bundle's folder, creation time and size."""
        if not self._root.is_dir():
            return
        for entry in self._root.iterdir():
            if not BUNDLE_ID.match(entry.name):
                continue
            try:
                meta = orjson.loads((entry / _META).read_bytes())
                created, size = float(meta["created_at"]), int(meta.get("bytes", 0))
            except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                created, size = entry.stat().st_mtime, 0
            if self._clock() - created <= self._ttl:
                yield entry, created, size

    def _folder(self, bundle_id: str) -> Path:
        if not BUNDLE_ID.match(bundle_id or ""):
            raise BundleNotFoundError(bundle_id)
        folder = self._root / bundle_id
        try:
            meta = orjson.loads((folder / _META).read_bytes())
        except (OSError, orjson.JSONDecodeError) as err:
            raise BundleNotFoundError(bundle_id) from err
        if self._clock() - float(meta.get("created_at", 0)) > self._ttl:
            shutil.rmtree(folder, ignore_errors=True)
            raise BundleNotFoundError(bundle_id)
        return folder / _CONTENT / str(meta.get("prefix", ""))

    def _load(self, bundle_id: str) -> BundleContents:
        folder = self._folder(bundle_id)
        try:
            return read_contents(folder)
        except OSError as err:
            raise BundleNotFoundError(bundle_id) from err

    def _purge(self) -> int:
        """Expired bundles, and staging folders of processes that are gone."""
        now = self._clock()
        if not self._root.is_dir():
            return 0
        removed = remove_abandoned_staging(self._root)
        for entry in self._root.iterdir():
            if not BUNDLE_ID.match(entry.name):
                continue
            try:
                created = float(orjson.loads((entry / _META).read_bytes())["created_at"])
            except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
                created = entry.stat().st_mtime
            if now - created > self._ttl:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
