"""Checking and unpacking a bundle archive into a folder, and reading one back."""

from __future__ import annotations

import errno
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mn_api.application.ports import BundleContents
from mn_api.domain.bundle_rules import (
    MANIFEST_NAME,
    PAYLOADS_DIR,
    ByteBudget,
    Limits,
    check_members,
    manifest_prefix,
    payload_key,
)
from mn_api.domain.errors import BundleRejectedError

_CHUNK = 1 << 16
# The records that say how many entries an archive holds and where its directory lies.
_END = struct.Struct("<4s4H2LH")  # end of central directory
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ENTRY = struct.Struct("<4s24x3H12x")  # a central directory header, as far as it matters
_ENTRY_SIGNATURE = b"PK\x01\x02"


@dataclass(frozen=True, slots=True)
class Unpacked:
    prefix: str
    manifest: dict[str, Any]
    files: int
    bytes: int


def unpack(archive: BinaryIO, target: Path, limits: Limits) -> Unpacked:
    """Check every rule, then write the members under `target` (created here).

    Raises BundleRejectedError; the caller removes `target` when anything fails.
    """
    try:
        check_entry_count(archive, limits)
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise BundleRejectedError("not_a_zip", "the upload is not a zip archive") from err
    with zf:
        infos = zf.infolist()
        check_members(((i.filename, i.external_attr) for i in infos), limits)
        if any(i.flag_bits & 0x1 for i in infos):
            raise BundleRejectedError("bundle_encrypted", "encrypted bundles are not supported")
        if sum(i.file_size for i in infos) > limits.budget:
            raise limits.too_large()
        prefix = manifest_prefix(i.filename for i in infos)
        target.mkdir(parents=True, mode=0o700)
        budget = ByteBudget(limits)
        files = 0
        for info in infos:
            if info.is_dir():
                continue
            payload_key(info.filename, prefix)  # refuses unsafe payload names early
            files += 1
            _extract(zf, info, target, budget)
    manifest = _read_manifest(target / prefix / MANIFEST_NAME)
    return Unpacked(prefix, manifest, files, budget.used)


def check_entry_count(archive: BinaryIO, limits: Limits) -> None:
    """Refuse an archive of more than `limits.max_files` entries before zipfile reads it:
    zipfile builds an object for every entry of the central directory first, whatever
    their number. The count its end record gives (the Zip64 one when there is one) is
    checked, then the directory's headers are counted where zipfile will read them (a
    record can understate). What cannot be read here is left for zipfile to refuse."""
    archive.seek(0, os.SEEK_END)
    size = archive.tell()
    tail = min(size, _END.size + 0xFFFF)  # the record, and the longest comment after it
    archive.seek(size - tail)
    data = archive.read(tail)
    at = data.rfind(_END_SIGNATURE)
    if at < 0 or at + _END.size > len(data):
        return
    _sig, _disk, _cd_disk, _here, entries, cd_size, _offset, _comment = _END.unpack_from(data, at)
    end = size - tail + at
    zip64_at = end - _ZIP64_LOCATOR.size - _ZIP64_END.size
    if zip64_at >= 0:
        archive.seek(zip64_at)
        record = archive.read(_ZIP64_END.size + _ZIP64_LOCATOR.size)
        if (
            len(record) == _ZIP64_END.size + _ZIP64_LOCATOR.size
            and record[_ZIP64_END.size :].startswith(b"PK\x06\x07")
            and record.startswith(b"PK\x06\x06")
        ):
            fields = _ZIP64_END.unpack_from(record)
            entries, cd_size, end = fields[7], fields[8], zip64_at
    if entries > limits.max_files:
        raise _too_many(limits)
    position, count = end - cd_size, 0
    if position < 0:
        return
    archive.seek(position)
    while position + _ENTRY.size <= end:
        header = archive.read(_ENTRY.size)
        if len(header) < _ENTRY.size or not header.startswith(_ENTRY_SIGNATURE):
            return
        count += 1
        if count > limits.max_files:
            raise _too_many(limits)
        _sig, name, extra, comment = _ENTRY.unpack(header)
        archive.seek(name + extra + comment, os.SEEK_CUR)
        position += _ENTRY.size + name + extra + comment


def _too_many(limits: Limits) -> BundleRejectedError:
    return BundleRejectedError(
        "bundle_too_many_files", f"bundle holds more than {limits.max_files} files"
    )


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: ByteBudget) -> None:
    path = target / info.filename
    # The member rules already exclude escapes; this guards against a rule gap.
    if not path.resolve().is_relative_to(target.resolve()):
        raise BundleRejectedError("bundle_path_traversal", "bundle holds a '..' path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(path, "xb") as dst:
            while chunk := src.read(_CHUNK):
                budget.spend(len(chunk))
                dst.write(chunk)
    except FileExistsError as err:
        if path.is_dir() or not path.parent.is_dir():
            raise _colliding() from err
        raise BundleRejectedError(
            "bundle_duplicate_member", "bundle holds the same file twice"
        ) from err
    except (NotADirectoryError, IsADirectoryError) as err:
        raise _colliding() from err
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise BundleRejectedError(
                "bundle_invalid_path", "bundle holds a name too long for the file system"
            ) from err
        raise
    except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError) as err:
        raise BundleRejectedError(
            "bundle_corrupt", "bundle is damaged or uses an unsupported compression"
        ) from err


def _colliding() -> BundleRejectedError:
    return BundleRejectedError(
        "bundle_invalid_path", "bundle holds a file and a folder of the same name"
    )


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


def read_contents(base: Path) -> BundleContents:
    """The manifest text and payload files of an unpacked bundle rooted at `base`."""
    manifest_json = (base / MANIFEST_NAME).read_text(encoding="utf-8")
    payloads: dict[str, bytes] = {}
    payload_root = base / PAYLOADS_DIR.rstrip("/")
    if payload_root.is_dir():
        for path in sorted(payload_root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                payloads[path.relative_to(payload_root).as_posix()] = path.read_bytes()
    return BundleContents(manifest_json, payloads)
