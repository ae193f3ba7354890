"""FolderBlueprints: blueprints read from folders on the gateway's host.

A blueprint is a folder holding `manifest.json` and, optionally, `payloads/`. The
catalogue is one folder of them (each at its top, or one level down in a category
folder). A launch by path may name a blueprint folder, its `manifest.json` or a `.zip`
bundle, under one of the launch roots (the catalogue is one of them). Whatever is read
stays inside the root it was found under: links that lead out of it are not followed,
and the bundle limits (files, bytes) apply as they do to uploads.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

from mn_api.application.ports import Blueprint, BlueprintSource, BundleContents
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    BundleRejectedError,
    LaunchPathNotAllowedError,
)
from mn_api.domain.payload_paths import payload_path_problem

MANIFEST = "manifest.json"
PAYLOADS = "payloads"
MAX_BLUEPRINTS = 1000


class FolderBlueprints(BlueprintSource):
    def __init__(self, catalog: Path | None, roots: tuple[Path, ...], limits: Limits) -> None:
        self._catalog = catalog.resolve() if catalog is not None else None
        every = ((self._catalog,) if self._catalog is not None else ()) + tuple(
            root.resolve() for root in roots
        )
        self._roots = tuple(dict.fromkeys(every))
        self._limits = limits

    async def catalog(self) -> list[Blueprint]:
        return await asyncio.to_thread(self._list)

    async def blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        return await asyncio.to_thread(self._blueprint, blueprint_id)

    async def at_path(self, path: str) -> BundleContents | Path:
        return await asyncio.to_thread(self._at_path, path)

    # -- worker-thread side --------------------------------------------------------------

    def _list(self) -> list[Blueprint]:
        if self._catalog is None or not self._catalog.is_dir():
            return []
        found: list[Blueprint] = []
        for folder in self._folders():
            found.append(self._describe(folder, _manifest_of(folder)))
            if len(found) >= MAX_BLUEPRINTS:
                break
        return sorted(found, key=lambda b: (b.category, b.name.lower(), b.id))

    def _folders(self) -> list[Path]:
        """The blueprint folders of the catalogue: at its top, or in a category folder."""
        assert self._catalog is not None
        folders = []
        for entry in sorted(self._catalog.iterdir()):
            if entry.name.startswith(".") or not _inside(entry, self._catalog):
                continue
            if (entry / MANIFEST).is_file():
                folders.append(entry)
            elif entry.is_dir():
                folders.extend(
                    sub
                    for sub in sorted(entry.iterdir())
                    if not sub.name.startswith(".")
                    and _inside(sub, self._catalog)
                    and (sub / MANIFEST).is_file()
                )
        return folders

    def _describe(self, folder: Path, manifest: dict[str, Any] | None) -> Blueprint:
        assert self._catalog is not None
        ident = folder.relative_to(self._catalog).as_posix()
        manifest = manifest or {}
        metadata = manifest.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        category = ident.split("/")[0] if "/" in ident else ""
        name = _text(metadata.get("name"), manifest.get("job_name"), manifest.get("graph_id"))
        return Blueprint(
            id=ident,
            name=name or folder.name,
            description=_text(metadata.get("description"), manifest.get("description")),
            category=_text(metadata.get("category")) or category,
        )

    def _blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        missing = BlueprintNotFoundError(f"no blueprint {blueprint_id[:200]!r} in the catalogue")
        if self._catalog is None or not blueprint_id or blueprint_id.startswith((".", "/")):
            raise missing
        parts = blueprint_id.split("/")
        if len(parts) > 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise missing
        folder = self._catalog.joinpath(*parts)
        if not _inside(folder, self._catalog) or not (folder / MANIFEST).is_file():
            raise missing
        contents = self._read(folder, self._catalog)
        return self._describe(folder, _manifest_of(folder)), contents

    def _at_path(self, path: str) -> BundleContents | Path:
        given = Path(path)
        if not path or "\x00" in path or not given.is_absolute():
            raise LaunchPathNotAllowedError("give the absolute path of a blueprint folder")
        target = given.resolve()
        root = next((r for r in self._roots if target.is_relative_to(r)), None)
        if root is None:
            raise LaunchPathNotAllowedError(
                "the path is outside the folders this gateway launches from "
                "(MN_API_BLUEPRINT_DIR, MN_API_LAUNCH_ROOTS)"
            )
        if target.is_file() and target.suffix.lower() == ".zip":
            return target
        if target.is_file() and target.name == MANIFEST:
            target = target.parent
        if not (target / MANIFEST).is_file():
            raise BlueprintNotFoundError(
                "nothing to launch there: give a folder with a manifest.json, its "
                "manifest.json, or a .zip bundle"
            )
        return self._read(target, root)

    def _read(self, folder: Path, root: Path) -> BundleContents:
        """The folder's manifest and payloads, within the bundle limits and the root."""
        manifest_path = folder / MANIFEST
        if not _inside(manifest_path, root):
            raise BlueprintNotFoundError("the manifest.json there leads outside its folder")
        budget = self._limits.budget
        manifest_json = manifest_path.read_bytes()
        spent = len(manifest_json)
        payloads: dict[str, bytes] = {}
        payload_root = folder / PAYLOADS
        if payload_root.is_dir() and _inside(payload_root, root):
            for directory, names, files in os.walk(payload_root):
                here = Path(directory)
                names[:] = sorted(n for n in names if _inside(here / n, root))
                for name in sorted(files):
                    file = here / name
                    if file.is_symlink() or not _inside(file, root):
                        continue
                    key = file.relative_to(payload_root).as_posix()
                    if payload_path_problem(key) is not None:
                        raise BundleRejectedError(
                            "bundle_invalid_path", "the blueprint holds an unsafe payload path"
                        )
                    if len(payloads) + 1 >= self._limits.max_files:
                        raise BundleRejectedError(
                            "bundle_too_many_files", "the blueprint holds too many files"
                        )
                    spent += file.stat().st_size
                    if spent > budget:
                        raise BundleRejectedError(
                            "bundle_too_large", "the blueprint is larger than a bundle may be"
                        )
                    payloads[key] = file.read_bytes()
        try:
            text = manifest_json.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleRejectedError(
                "bundle_manifest_invalid", "manifest.json is not UTF-8 text"
            ) from None
        return BundleContents(text, payloads)


def _inside(path: Path, root: Path) -> bool:
    """Whether the path, its links followed, stays within the root."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def _manifest_of(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _text(*values: Any) -> str:
    return next((v.strip() for v in values if isinstance(v, str) and v.strip()), "")
