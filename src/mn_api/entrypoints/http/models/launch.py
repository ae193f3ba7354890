"""What a launch request may name, per source, as JSON Schema for the OpenAPI document.

The launch itself judges the request (a missing name, an unusable progress id, overrides it
cannot apply are each 422 `validation_error`; an unknown blueprint or bundle 404, a path
outside the launch roots 403): the schema says the same.
"""

from __future__ import annotations

from typing import Any

from mn_api.application.use_cases.launch_blueprint import PROGRESS_ID

# A catalogue blueprint's id: its folder, or its category and folder (none hidden).
BLUEPRINT_ID_PATTERN = r"^[^./][^/]*(?:/[^./][^/]*)?$"
# A launch's progress id; an empty one asks the gateway to make one up.
PROGRESS_ID_PATTERN = rf"^(?:{PROGRESS_ID.pattern.removeprefix('^').removesuffix('$')})?$"
# An absolute path on the gateway's host.
LAUNCH_PATH_PATTERN = "^/"


def _source(source: str, *names: str) -> dict[str, Any]:
    """A launch from `source`, naming what it launches by one of `names` (not empty)."""
    named = {"type": "string", "minLength": 1}
    return {
        "properties": {"source": {"const": source}, **dict.fromkeys(names, named)},
        "anyOf": [{"required": [name]} for name in names],
    }


LAUNCH_SOURCES: list[dict[str, Any]] = [
    _source("catalog", "blueprint_id"),
    _source("path", "path"),
    _source("bundle", "_bundle_path", "bundle_id"),
]
