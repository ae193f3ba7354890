"""FolderBlueprints: blueprints read from folders on the gateway's host.

A blueprint is a folder holding `manifest.json` and, optionally, `payloads/`. The
catalogue is one folder of them (each at its top, or one level down in a category
folder). A launch by path may name a blueprint folder, its `manifest.json` or a `.zip`
bundle, under one of the launch roots (the catalogue is one of them). Each root is
resolved once, when the gateway starts; below it no link is followed on any component
(see host_files), and the bundle limits (entries, bytes) apply as they do to uploads.

All reading runs on a few threads of its own (BoundedPool), never on the event loop nor
on the threads asyncio lends to other work; when they and their queue are full, a request
is refused at once (503 `blueprints_busy`).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mn_api.adapters.bounded_pool import BoundedPool
from mn_api.adapters.host_files import (
    Kind,
    Refused,
    kind_at,
    open_dir,
    open_file,
    open_root,
    read_at_most,
    read_blueprint,
    refusal,
    too_long,
)
from mn_api.application.ports import Blueprint, BlueprintSource, BundleContents
from mn_api.domain.bundle_rules import MANIFEST_NAME, Limits
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    BundleRejectedError,
    DomainError,
    LaunchPathNotAllowedError,
)

MAX_BLUEPRINTS = 1000
# What one catalogue listing reads at most: entries looked at, bytes of one manifest, and
# bytes of all manifests together. A blueprint beyond them is listed under its folder's
# name, its manifest unread.
LISTING_ENTRIES = 20_000
LISTED_MANIFEST_BYTES = 1024 * 1024
LISTING_BYTES = 8 * 1024 * 1024
# Threads reading the host's files, and calls that may wait for one.
READERS = 4
WAITING_READS = 32

_OUTSIDE = (
    "the path is outside the folders this gateway launches from "
    "(MN_API_BLUEPRINT_DIR, MN_API_LAUNCH_ROOTS), or leads through a link"
)


class FolderBlueprints(BlueprintSource):
    def __init__(
        self,
        catalog: Path | None,
        roots: tuple[Path, ...],
        limits: Limits,
        readers: int = READERS,
        waiting: int = WAITING_READS,
    ) -> None:
        self._catalog = catalog.resolve() if catalog is not None else None
        given = ((catalog,) if catalog is not None else ()) + tuple(roots)
        # Each root by the path it was given as and by its resolved path, deepest first.
        prefixes: dict[tuple[str, ...], Path] = {}
        for root in given:
            resolved = root.resolve()
            prefixes.setdefault(Path(os.path.abspath(root)).parts[1:], resolved)
            prefixes.setdefault(resolved.parts[1:], resolved)
        self._roots = sorted(prefixes.items(), key=lambda item: -len(item[0]))
        self._limits = limits
        self._pool = BoundedPool(readers, waiting, "mn-blueprints")

    async def catalog(self) -> list[Blueprint]:
        return await self._pool.run(self._list)

    async def blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        return await self._pool.run(partial(self._blueprint, blueprint_id))

    async def at_path(self, path: str) -> BundleContents | BinaryIO:
        return await self._pool.run(partial(self._at_path, path), abandoned=_close)

    def close(self) -> None:
        self._pool.close()

    # -- worker-thread side --------------------------------------------------------------

    def _list(self) -> list[Blueprint]:
        if self._catalog is None:
            return []
        listing = _Listing()
        found: list[Blueprint] = []
        with ExitStack() as closing:
            try:
                root = open_root(self._catalog)
            except Refused:
                return []
            closing.callback(os.close, root)
            for name in listing.folders(root):
                with ExitStack() as inner:
                    try:
                        folder = open_dir(root, name)
                    except Refused:
                        continue
                    inner.callback(os.close, folder)
                    kind, manifest = listing.manifest(folder)
                    if kind is Kind.FILE:
                        found.append(_describe(name, manifest))
                    elif kind is Kind.MISSING:  # a category folder
                        found.extend(self._category(listing, folder, name))
                if len(found) >= MAX_BLUEPRINTS:
                    break
        return sorted(found[:MAX_BLUEPRINTS], key=lambda b: (b.category, b.name.lower(), b.id))

    def _category(self, listing: _Listing, folder: int, category: str) -> list[Blueprint]:
        found = []
        for name in listing.folders(folder):
            try:
                inner = open_dir(folder, name)
            except Refused:
                continue
            try:
                kind, manifest = listing.manifest(inner)
            finally:
                os.close(inner)
            if kind is Kind.FILE:
                found.append(_describe(f"{category}/{name}", manifest))
        return found

    def _blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        missing = BlueprintNotFoundError(f"no blueprint {blueprint_id[:200]!r} in the catalogue")
        parts = blueprint_id.split("/")
        if (
            self._catalog is None
            or len(parts) > 2
            or any(not p or p.startswith(".") or too_long(p) for p in parts)
        ):
            raise missing
        with ExitStack() as closing:
            try:
                folder = open_root(self._catalog)
                closing.callback(os.close, folder)
                for part in parts:
                    folder = open_dir(folder, part)
                    closing.callback(os.close, folder)
            except Refused:
                raise missing from None
            contents = read_blueprint(folder, self._limits, missing)
        return _describe(blueprint_id, _parsed(contents.manifest_json)), contents

    def _at_path(self, path: str) -> BundleContents | BinaryIO:
        if not path.startswith("/") or "\x00" in path:
            raise LaunchPathNotAllowedError("give the absolute path of a blueprint folder")
        parts = tuple(p for p in path.split("/") if p not in ("", "."))
        if ".." in parts:
            raise LaunchPathNotAllowedError("the path may not hold '..'")
        found = next(
            ((root, parts[len(p) :]) for p, root in self._roots if parts[: len(p)] == p), None
        )
        if found is None:
            raise LaunchPathNotAllowedError(_OUTSIDE)
        root, rest = found
        if any(too_long(part) for part in rest):
            raise refusal(Kind.LONG_NAME)
        nothing = refusal(Kind.MISSING)
        with ExitStack() as closing:
            try:
                folder = open_root(root)
            except Refused:
                raise nothing from None
            closing.callback(os.close, folder)
            for part in rest[:-1]:
                folder = _step(folder, part, nothing)
                closing.callback(os.close, folder)
            if not rest:
                return read_blueprint(folder, self._limits, nothing)
            last = rest[-1]
            kind = kind_at(folder, last)
            if kind is Kind.DIR:
                inner = _step(folder, last, nothing)
                closing.callback(os.close, inner)
                return read_blueprint(inner, self._limits, nothing)
            if kind is Kind.FILE and last == MANIFEST_NAME:
                return read_blueprint(folder, self._limits, nothing)
            if kind is Kind.FILE and last.lower().endswith(".zip"):
                return self._archive(folder, last, nothing)
            if kind is Kind.LINK:
                raise LaunchPathNotAllowedError(_OUTSIDE)
            raise refusal(kind) if kind is not Kind.FILE else nothing

    def _archive(self, folder: int, name: str, nothing: DomainError) -> BinaryIO:
        """The .zip, opened once: the bundle store reads this very descriptor."""
        try:
            fd, size = open_file(folder, name)
        except Refused as refused:
            if refused.kind is Kind.LINK:
                raise LaunchPathNotAllowedError(_OUTSIDE) from None
            raise (nothing if refused.kind is Kind.MISSING else refusal(refused.kind)) from None
        if size > self._limits.budget:
            os.close(fd)
            raise BundleRejectedError(
                "bundle_too_large", f"the archive is larger than {self._limits.budget} bytes"
            )
        return os.fdopen(fd, "rb")


class _Listing:
    """What one catalogue listing has looked at and read so far."""

    def __init__(self) -> None:
        self._entries = 0
        self._bytes = 0

    def folders(self, dir_fd: int) -> list[str]:
        """The folders in `dir_fd` (not links, not hidden), sorted; none once the listing
        has looked at LISTING_ENTRIES entries."""
        names = []
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    self._entries += 1
                    if self._entries > LISTING_ENTRIES:
                        break
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                        names.append(entry.name)
        except OSError:
            pass  # listed as far as it could be read
        return sorted(names)

    def manifest(self, folder: int) -> tuple[Kind, dict[str, Any] | None]:
        """What the folder's manifest.json is (a FILE for a blueprint) and, when it fits
        the listing's budgets, its contents."""
        try:
            fd, size = open_file(folder, MANIFEST_NAME)
        except Refused as refused:
            return refused.kind, None
        except OSError:
            return Kind.UNREADABLE, None
        try:
            allowed = min(LISTED_MANIFEST_BYTES, LISTING_BYTES - self._bytes)
            data = read_at_most(fd, size, allowed) if size <= allowed else None
        except OSError:
            data = None
        finally:
            os.close(fd)
        if data is None:
            return Kind.FILE, None
        self._bytes += len(data)
        return Kind.FILE, _parsed(data)


def _step(folder: int, name: str, nothing: DomainError) -> int:
    """The next folder of a launch path; a link on the way is a path outside the roots."""
    try:
        return open_dir(folder, name)
    except Refused as refused:
        if refused.kind is Kind.LINK:
            raise LaunchPathNotAllowedError(_OUTSIDE) from None
        if refused.kind in (Kind.MISSING, Kind.FILE):
            raise nothing from None
        raise refusal(refused.kind) from None


def _describe(ident: str, manifest: dict[str, Any] | None) -> Blueprint:
    manifest = manifest or {}
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    category = ident.split("/")[0] if "/" in ident else ""
    name = _text(metadata.get("name"), manifest.get("job_name"), manifest.get("graph_id"))
    return Blueprint(
        id=ident,
        name=name or ident.rsplit("/", 1)[-1],
        description=_text(metadata.get("description"), manifest.get("description")),
        category=_text(metadata.get("category")) or category,
    )


def _parsed(text: str | bytes) -> dict[str, Any] | None:
    try:
        manifest = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return manifest if isinstance(manifest, dict) else None


def _text(*values: Any) -> str:
    return next((v.strip() for v in values if isinstance(v, str) and v.strip()), "")


def _close(found: BundleContents | BinaryIO) -> None:
    if not isinstance(found, BundleContents):
        found.close()
