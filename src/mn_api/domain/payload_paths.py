"""The rule for payload keys: each becomes a file under the bundle's payloads/ folder."""

from __future__ import annotations

import re

from mn_api.domain.errors import UnsafePayloadPathError

MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
# C0 and C1 controls, DEL, and the marks that reorder how text is shown (bidirectional
# overrides and isolates), which make a name read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def payload_path_problem(path: str) -> str | None:
    """Why `path` is unsafe as a relative POSIX file path, or None when it is safe."""
    if not isinstance(path, str) or path == "":
        return "path is empty"
    if _CONTROL.search(path):
        return "path holds a NUL or control character"
    if _SURROGATE.search(path):
        return "path holds a lone surrogate (it is not valid UTF-8)"
    if _BIDI.search(path):
        return "path holds a bidirectional override"
    if "\\" in path:
        return "path holds a backslash"
    if path.startswith("/"):
        return "path is absolute"
    if _DRIVE.match(path):
        return "path starts with a drive letter"
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATH_BYTES:
        return f"path is longer than {MAX_PATH_BYTES} bytes"
    for segment in path.split("/"):
        if segment == "":
            return "path has an empty segment"
        if segment in (".", ".."):
            return "path has a '.' or '..' segment"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"path has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_payload_path(path: str) -> None:
    problem = payload_path_problem(path)
    if problem is not None:
        raise UnsafePayloadPathError(path, problem)
