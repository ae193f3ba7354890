"""Reading files of the host under a folder, never through a link.

Each name is opened once, relative to the descriptor of the folder holding it and with
O_NOFOLLOW, so no link is followed on any component and nothing can be swapped between a
check and the read: the type is checked with fstat on the open descriptor, and what is
checked is what is read. What stands at a name is looked at (without following it)
before it is opened, so a FIFO, a socket or a device is never opened at all; a FIFO swapped
in at the last moment opens without blocking (O_NONBLOCK) and is refused by that fstat.
Sizes are checked before reading, and bytes are counted as they are read (a file may grow).
A blueprint folder is held to the limits a bundle's ZIP is held to: every entry walked
counts against the file limit, folders too, and folders nest MAX_DEPTH deep at most.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from contextlib import ExitStack
from pathlib import Path

from mn_api.application.ports import BundleContents
from mn_api.domain.bundle_rules import MANIFEST_NAME, PAYLOADS_DIR, Limits
from mn_api.domain.errors import (
    BlueprintNotFoundError,
    BundleRejectedError,
    DomainError,
    LaunchPathNotAllowedError,
    LaunchPathNotRegularError,
)
from mn_api.domain.payload_paths import payload_path_problem

FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = FILE_FLAGS | os.O_DIRECTORY
NAME_MAX = 255  # bytes in one name, as Linux file systems allow
MAX_DEPTH = 32  # folders within payloads/
_CHUNK = 1 << 20
PAYLOADS = PAYLOADS_DIR.rstrip("/")


class Kind(enum.Enum):
    """What stands at a name."""

    MISSING = "missing"
    LINK = "link"
    DIR = "folder"
    FILE = "file"
    OTHER = "not regular"  # a FIFO, a socket, a device
    LONG_NAME = "name too long"
    UNREADABLE = "unreadable"


class Refused(Exception):
    """What stood at a name when it was not what was asked for."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(kind.value)
        self.kind = kind


def kind_at(dir_fd: int, name: str) -> Kind:
    """What stands at `name` in the folder `dir_fd`, links not followed."""
    if too_long(name):
        return Kind.LONG_NAME
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError as err:
        return _error_kind(err)
    return _mode_kind(mode)


def open_root(root: Path) -> int:
    """A descriptor of `root` (absolute, resolved once when configured), reached from `/`
    one folder at a time and never through a link."""
    fd = os.open("/", DIR_FLAGS)
    try:
        for part in root.parts[1:]:
            inner = open_dir(fd, part)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(dir_fd: int, name: str) -> int:
    """The folder `name` in `dir_fd`; Refused with what stands there instead."""
    if too_long(name):
        raise Refused(Kind.LONG_NAME)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        kind = _error_kind(err)
        if err.errno == errno.ENOTDIR:  # a link or a file, or swapped for one just now
            kind = kind_at(dir_fd, name)
            kind = Kind.LINK if kind is Kind.DIR else kind
        raise Refused(kind) from None


def open_file(dir_fd: int, name: str) -> tuple[int, int]:
    """A regular file's descriptor and size; Refused with what stands there instead."""
    kind = kind_at(dir_fd, name)
    if kind is not Kind.FILE:
        raise Refused(kind)
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise Refused(_error_kind(err)) from None
    mode, size = _fstat(fd)
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Refused(_mode_kind(mode))
    return fd, size


def read_at_most(fd: int, size: int, limit: int) -> bytes | None:
    """The file's bytes when there are `limit` of them at most, else None: `size` (its
    fstat size) refuses a large file unread; past that, the bytes read are counted and
    reading stops one byte beyond `limit`."""
    if size > limit:
        return None
    data = bytearray()
    while chunk := os.read(fd, min(_CHUNK, limit + 1 - len(data))):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def read_blueprint(folder_fd: int, limits: Limits, missing: DomainError) -> BundleContents:
    """The manifest and payloads of the blueprint folder `folder_fd`, within the bundle
    limits; `missing` is raised when it holds no manifest.json."""
    return _Walk(limits).blueprint(folder_fd, missing)


def refusal(kind: Kind) -> DomainError:
    """The problem to answer for what stood inside a blueprint (or at a launch path)."""
    if kind is Kind.LINK:
        return BundleRejectedError("bundle_symlink", "the blueprint holds a symbolic link")
    if kind is Kind.OTHER:
        return LaunchPathNotRegularError(
            "the blueprint holds something other than regular files and folders (a FIFO, "
            "a socket or a device): nothing of it is read"
        )
    if kind is Kind.LONG_NAME:
        return BundleRejectedError(
            "bundle_invalid_path",
            f"the blueprint holds a name longer than the {NAME_MAX} bytes a file name may have",
        )
    if kind is Kind.UNREADABLE:
        return LaunchPathNotAllowedError("the gateway may not read the blueprint's files")
    return BlueprintNotFoundError(
        "nothing to launch there: give a folder with a manifest.json, its manifest.json, "
        "or a .zip bundle"
    )


class _Walk:
    """One blueprint read: the entries walked and the bytes read so far."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._entries = 0
        self._used = 0
        self._payloads: dict[str, bytes] = {}

    def blueprint(self, folder_fd: int, missing: DomainError) -> BundleContents:
        self._count()
        try:
            manifest = self._file(folder_fd, MANIFEST_NAME)
        except Refused as refused:
            if refused.kind in (Kind.MISSING, Kind.DIR):
                raise missing from None
            raise refusal(refused.kind) from None
        try:
            text = manifest.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleRejectedError(
                "bundle_manifest_invalid", "manifest.json is not UTF-8 text"
            ) from None
        kind = kind_at(folder_fd, PAYLOADS)
        if kind is Kind.DIR:
            self._count()
            self._folder(folder_fd, PAYLOADS, "", 1)
        elif kind in (Kind.LINK, Kind.OTHER, Kind.UNREADABLE, Kind.LONG_NAME):
            raise refusal(kind)
        return BundleContents(text, self._payloads)

    def _folder(self, parent_fd: int, name: str, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise BundleRejectedError(
                "bundle_invalid_path",
                f"the blueprint's payloads nest more than {MAX_DEPTH} folders deep",
            )
        with ExitStack() as closing:
            try:
                fd = open_dir(parent_fd, name)
            except Refused as refused:
                if refused.kind is Kind.MISSING:
                    return  # gone while being read: there is nothing of it to send
                raise refusal(refused.kind) from None
            closing.callback(os.close, fd)
            found: list[tuple[str, Kind]] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    self._count()
                    found.append((entry.name, _entry_kind(entry)))
            for child, kind in sorted(found):
                key = f"{prefix}{child}"
                if payload_path_problem(key) is not None:
                    raise BundleRejectedError(
                        "bundle_invalid_path", "the blueprint holds an unsafe payload path"
                    )
                if kind is Kind.DIR:
                    self._folder(fd, child, f"{key}/", depth + 1)
                elif kind is Kind.FILE:
                    self._payload(fd, child, key)
                elif kind is not Kind.MISSING:  # what vanished meanwhile is not sent
                    raise refusal(kind)

    def _payload(self, dir_fd: int, name: str, key: str) -> None:
        try:
            self._payloads[key] = self._file(dir_fd, name)
        except Refused as refused:
            if refused.kind is not Kind.MISSING:
                raise refusal(refused.kind) from None

    def _file(self, dir_fd: int, name: str) -> bytes:
        fd, size = open_file(dir_fd, name)
        try:
            data = read_at_most(fd, size, self._limits.budget - self._used)
        finally:
            os.close(fd)
        if data is None:
            raise self._limits.too_large()
        self._used += len(data)
        return data

    def _count(self) -> None:
        self._entries += 1
        if self._entries > self._limits.max_files:
            raise BundleRejectedError(
                "bundle_too_many_files",
                f"the blueprint holds more than {self._limits.max_files} files and folders",
            )


def _entry_kind(entry: os.DirEntry[str]) -> Kind:
    try:
        if entry.is_symlink():
            return Kind.LINK
        if entry.is_dir(follow_symlinks=False):
            return Kind.DIR
        if entry.is_file(follow_symlinks=False):
            return Kind.FILE
    except OSError as err:
        return _error_kind(err)
    return Kind.LONG_NAME if too_long(entry.name) else Kind.OTHER


def _fstat(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_mode, st.st_size


def _mode_kind(mode: int) -> Kind:
    if stat.S_ISLNK(mode):
        return Kind.LINK
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISREG(mode):
        return Kind.FILE
    return Kind.OTHER


def _error_kind(err: OSError) -> Kind:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return Kind.MISSING
    if err.errno == errno.ELOOP:
        return Kind.LINK
    if err.errno == errno.ENAMETOOLONG:
        return Kind.LONG_NAME
    if err.errno in (errno.EACCES, errno.EPERM):
        return Kind.UNREADABLE
    if err.errno in (errno.ENXIO, errno.EOPNOTSUPP, errno.ENODEV):
        return Kind.OTHER  # a socket, or a device with nothing behind it
    raise err


def too_long(name: str) -> bool:
    """Whether `name` is longer than one name on the file system may be."""
    return len(os.fsencode(name)) > NAME_MAX
