"""FilesystemBundleStore: bundles checked, unpacked and kept as folders on local disk."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mn_api.application.ports import BundleContents, BundleStore, StoredBundle
from mn_api.domain.bundle_rules import (
    MANIFEST_NAME,
    ByteBudget,
    Limits,
    check_members,
    manifest_prefix,
    payload_key,
)
from mn_api.domain.errors import BundleNotFoundError, BundleRejectedError

_BUNDLE_ID = re.compile(r"^bnd_[0-9a-f]{32}$")
_CHUNK = 1 << 16
_META = "meta.json"
_CONTENT = "content"
_STAGING = ".staging-"
_PURGE_EVERY_SECONDS = 60.0


class FilesystemBundleStore(BundleStore):
    """One folder per bundle under `root`; a refused upload leaves nothing behind.

    Archives are unpacked into a staging folder and renamed into place only once every
    rule holds, so a bundle is either whole or absent. Work runs in a worker thread so
    the event loop keeps serving other requests meanwhile.
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

    async def purge_expired(self) -> int:
        return await asyncio.to_thread(self._purge)

    # -- worker-thread side ----------------------------------------------------------

    def _save(self, archive: BinaryIO) -> StoredBundle:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._clock() - self._last_purge > _PURGE_EVERY_SECONDS:
            self._purge()
        bundle_id = f"bnd_{secrets.token_hex(16)}"
        staging = self._root / f"{_STAGING}{bundle_id}"
        try:
            stored = self._unpack(archive, bundle_id, staging)
            os.rename(staging, self._root / bundle_id)
            return stored
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _unpack(self, archive: BinaryIO, bundle_id: str, staging: Path) -> StoredBundle:
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise BundleRejectedError("not_a_zip", "the upload is not a zip archive") from err
        with zf:
            infos = zf.infolist()
            check_members(((i.filename, i.external_attr) for i in infos), self._limits)
            if any(i.flag_bits & 0x1 for i in infos):
                raise BundleRejectedError("bundle_encrypted", "encrypted bundles are not supported")
            declared = sum(i.file_size for i in infos)
            if declared > self._limits.max_bytes:
                raise BundleRejectedError(
                    "bundle_too_large",
                    f"bundle expands to more than {self._limits.max_bytes} bytes",
                )
            prefix = manifest_prefix(i.filename for i in infos)
            content = staging / _CONTENT
            content.mkdir(parents=True, mode=0o700)
            budget = ByteBudget(self._limits.max_bytes)
            files = 0
            for info in infos:
                if info.is_dir():
                    continue
                payload_key(info.filename, prefix)  # refuses unsafe payload names early
                files += 1
                self._extract(zf, info, content, budget)
        manifest = _read_manifest(content / prefix / MANIFEST_NAME)
        meta = {"created_at": self._clock(), "prefix": prefix, "files": files, "bytes": budget.used}
        (staging / _META).write_bytes(orjson.dumps(meta))
        return StoredBundle(bundle_id, manifest, files, budget.used)

    @staticmethod
    def _extract(
        zf: zipfile.ZipFile, info: zipfile.ZipInfo, content: Path, budget: ByteBudget
    ) -> None:
        target = content / info.filename
        # The member rules already exclude escapes; this guards against a rule gap.
        if not target.resolve().is_relative_to(content.resolve()):
            raise BundleRejectedError("bundle_path_traversal", "bundle holds a '..' path")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zf.open(info) as src, open(target, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    budget.spend(len(chunk))
                    dst.write(chunk)
        except FileExistsError as err:
            raise BundleRejectedError(
                "bundle_duplicate_member", "bundle holds the same file twice"
            ) from err
        except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError) as err:
            raise BundleRejectedError(
                "bundle_corrupt", "bundle is damaged or uses an unsupported compression"
            ) from err

    def _folder(self, bundle_id: str) -> Path:
        if not _BUNDLE_ID.match(bundle_id or ""):
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
        base = self._folder(bundle_id)
        manifest_json = (base / MANIFEST_NAME).read_text(encoding="utf-8")
        payloads: dict[str, bytes] = {}
        payload_root = base / "payloads"
        if payload_root.is_dir():
            for path in sorted(payload_root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    payloads[path.relative_to(payload_root).as_posix()] = path.read_bytes()
        return BundleContents(manifest_json, payloads)

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
            if not _BUNDLE_ID.match(entry.name):
                continue
            try:
                created = float(orjson.loads((entry / _META).read_bytes())["created_at"])
            except (OSError, ValueError, KeyError, orjson.JSONDecodeError):
                created = entry.stat().st_mtime
            if now - created > self._ttl:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise BundleRejectedError(
            "bundle_manifest_invalid", "manifest.json is not valid JSON"
        ) from err
    if not isinstance(manifest, dict):
        raise BundleRejectedError(
            "bundle_manifest_invalid", "manifest.json must hold a JSON object"
        )
    return manifest
