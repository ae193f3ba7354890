"""FilesystemBundleStore: bundles checked, unpacked and kept as folders on local disk."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import orjson

from mn_api.adapters.bundles.archive import read_contents, unpack
from mn_api.application.ports import BundleContents, BundleStore, StoredBundle
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import BundleNotFoundError

BUNDLE_ID = re.compile(r"^bnd_[0-9a-f]{32}$")
_META = "meta.json"
_CONTENT = "content"
_STAGING = ".staging-"
_PURGE_EVERY_SECONDS = 60.0


def new_bundle_id() -> str:
    return f"bnd_{secrets.token_hex(16)}"


class FilesystemBundleStore(BundleStore):
    """One folder per bundle under `root`; a refused upload leaves nothing behind.

    Archives are unpacked into a staging folder and renamed into place only once every
    rule holds, so a bundle is either whole or absent, for every process sharing `root`.
    Work runs in a worker thread so the event loop keeps serving other requests.
    """

    def __init__(
        self,
        root: Path,
        limits: Limits,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = Path(root)
        self._limits = limits
        self._ttl = ttl_seconds
        self._clock = clock
        self._last_purge = 0.0

    async def save(self, archive: BinaryIO) -> StoredBundle:
        return await asyncio.to_thread(self._save, archive)

    async def load(self, bundle_id: str) -> BundleContents:
        return await asyncio.to_thread(self._load, bundle_id)

    # -- worker-thread side ----------------------------------------------------------

    def _save(self, archive: BinaryIO) -> StoredBundle:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._clock() - self._last_purge > _PURGE_EVERY_SECONDS:
            self._purge()
        bundle_id = new_bundle_id()
        staging = self._root / f"{_STAGING}{bundle_id}"
        try:
            unpacked = unpack(archive, staging / _CONTENT, self._limits)
            meta = {
                "created_at": self._clock(),
                "prefix": unpacked.prefix,
                "files": unpacked.files,
                "bytes": unpacked.bytes,
            }
            (staging / _META).write_bytes(orjson.dumps(meta))
            os.rename(staging, self._root / bundle_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return StoredBundle(bundle_id, unpacked.manifest, unpacked.files, unpacked.bytes)

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
        return read_contents(self._folder(bundle_id))

    def _purge(self) -> int:
        self._last_purge = now = self._clock()
        if not self._root.is_dir():
            return 0
        removed = 0
        for entry in self._root.iterdir():
            if entry.name.startswith(_STAGING):
                if now - entry.stat().st_mtime > max(self._ttl, 3600):
                    shutil.rmtree(entry, ignore_errors=True)
                continue
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
