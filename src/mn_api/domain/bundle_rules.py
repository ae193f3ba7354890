"""Archive rules for uploaded bundles: which members are safe and where the manifest lives."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from mn_api.domain.errors import BundleRejectedError, DomainError, TooLargeForRuntimeError
from mn_api.domain.payload_paths import payload_path_problem

MANIFEST_NAME = "manifest.json"
PAYLOADS_DIR = "payloads/"
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_files: int
    max_bytes: int
    # What one message to the runtime can carry; a bundle must fit in it to be submitted.
    message_bytes: int | None = None

    @property
    def budget(self) -> int:
        """The most bytes a bundle may expand to."""
        return (
            self.max_bytes
            if self.message_bytes is None
            else min(self.max_bytes, self.message_bytes)
        )

    def too_large(self) -> DomainError:
        """The refusal of a bundle that expands beyond `budget`."""
        if self.message_bytes is not None and self.message_bytes < self.max_bytes:
            return TooLargeForRuntimeError(
                f"the bundle expands to more than the {self.message_bytes} bytes one "
                "submission to the runtime can carry",
                self.message_bytes,
            )
        return BundleRejectedError(
            "bundle_too_large", f"bundle expands to more than {self.max_bytes} bytes"
        )


def member_problem(name: str, external_attr: int) -> BundleRejectedError | None:
    """The rule a zip member breaks, judged from its header alone, or None."""
    if "\\" in name:
        return BundleRejectedError("bundle_backslash_path", "bundle member names use backslashes")
    if name.startswith("/") or _DRIVE.match(name):
        return BundleRejectedError("bundle_absolute_path", "bundle holds an absolute path")
    if any(part == ".." for part in name.split("/")):
        return BundleRejectedError("bundle_path_traversal", "bundle holds a '..' path")
    if _CONTROL.search(name) or name == "":
        return BundleRejectedError("bundle_invalid_path", "bundle holds an unusable member name")
    if stat.S_ISLNK(external_attr >> 16):
        return BundleRejectedError("bundle_symlink", "bundle holds a symbolic link")
    return None


def check_members(names_and_attrs: Iterable[tuple[str, int]], limits: Limits) -> None:
    """Refuse the archive when any member is unsafe or when it has too many members."""
    for count, (name, attr) in enumerate(names_and_attrs, 1):
        if count > limits.max_files:
            raise BundleRejectedError(
                "bundle_too_many_files", f"bundle holds more than {limits.max_files} files"
            )
        problem = member_problem(name, attr)
        if problem is not None:
            raise problem


def manifest_prefix(names: Iterable[str]) -> str:
    """The folder holding manifest.json: the root, or the archive's single top-level folder."""
    names = [n for n in names if n]
    if MANIFEST_NAME in names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        prefix = f"{tops.pop()}/"
        if f"{prefix}{MANIFEST_NAME}" in names:
            return prefix
    raise BundleRejectedError(
        "bundle_manifest_missing",
        "bundle has no manifest.json at its root or inside its single top-level folder",
    )


def payload_key(name: str, prefix: str) -> str | None:
    """The payload key a member stands for, or None when it is not a payload file."""
    start = f"{prefix}{PAYLOADS_DIR}"
    if not name.startswith(start) or name.endswith("/"):
        return None
    key = name[len(start) :]
    if payload_path_problem(key) is not None:
        raise BundleRejectedError("bundle_invalid_path", "bundle holds an unsafe payload path")
    return key


class ByteBudget:
    """Counts bytes actually written while extracting: headers can lie about sizes."""

    __slots__ = ("limits", "used")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limits.budget:
            raise self.limits.too_large()
