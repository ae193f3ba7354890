"""The manifest's rules (domain/manifest.py) as JSON Schema, for the OpenAPI document.

Requests carry the manifest as a plain object (or text): the runtime judges it and
answers `manifest_invalid` with every problem in its own words. The schema says the same
as far as JSON Schema can; what it cannot say is that node ids are unique and that edges,
entrypoints and initial inputs name nodes of the manifest.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Self

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from mn_api.adapters.bundles.filesystem import BUNDLE_ID
from mn_api.domain.manifest import (
    AGENT_TYPE_ALIASES,
    AGENT_TYPES,
    RECOVERY_MODES,
    ROOT_ROLES,
    TEMPLATE_TYPE_ALIASES,
    TEMPLATE_TYPES,
)
from mn_api.domain.payload_paths import MAX_PATH_BYTES, MAX_SEGMENT_BYTES
from mn_api.entrypoints.http.json_body import INT_RANGE

MANIFEST_REF = "#/components/schemas/Manifest"
JSON_VALUE_REF = "#/components/schemas/JsonValue"
_ANY = {"$ref": JSON_VALUE_REF}
# Integers a JSON encoder can write again (json_body.py refuses others as invalid JSON).
_INTEGERS = {
    "if": {"type": "integer"},
    "then": {"minimum": INT_RANGE.start, "maximum": INT_RANGE.stop - 1},
}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "title": "JsonValue",
    "description": f"Any JSON value whose integers lie from {INT_RANGE.start} to "
    f"{INT_RANGE.stop - 1}",
    **_INTEGERS,
    "items": _ANY,
    "additionalProperties": _ANY,
}


def _open(schema: dict[str, Any]) -> dict[str, Any]:
    """An object that may hold other members too (any JSON value)."""
    return {**schema, "additionalProperties": _ANY}


_NAME = {"type": "string", "minLength": 1}
_OBJECT_OR_NULL = _open({"type": ["object", "null"]})
_COUNT = {"type": ["integer", "null"], "minimum": 0, "maximum": INT_RANGE.stop - 1}
# The template types each agent type runs (executor and module run any).
_TEMPLATES_OF = {"router": ("generic", "map"), "aggregator": ("generic", "reduce")}
_TEMPLATES_OF["sensor"] = ("generic",)


def _aliases_of(kind: str) -> list[str]:
    return [kind, *(alias for alias, target in AGENT_TYPE_ALIASES.items() if target == kind)]


def _template_rule(kind: str, templates: tuple[str, ...]) -> dict[str, Any]:
    names = [*templates, *(a for a, t in TEMPLATE_TYPE_ALIASES.items() if t in templates)]
    return {
        "if": {"properties": {"agent_type": {"enum": _aliases_of(kind)}}},
        "then": {"properties": {"type": {"enum": [*names, None]}}},
    }


_NODE = _open(
    {
        "type": "object",
        "required": ["node_id", "agent_type"],
        "properties": {
            "node_id": {**_NAME, "description": "Unique within the manifest"},
            "agent_type": {"enum": [*AGENT_TYPES, *AGENT_TYPE_ALIASES]},
            "type": {
                "enum": [*TEMPLATE_TYPES, *TEMPLATE_TYPE_ALIASES, None],
                "description": "The template type; routers run generic or map, aggregators "
                "generic or reduce, sensors generic",
            },
            "role": {"type": ["string", "null"], "examples": list(ROOT_ROLES)},
            "config": _open(
                {
                    "type": ["object", "null"],
                    "properties": {
                        "simulate": _open(
                            {
                                "type": ["object", "null"],
                                "description": "What the simulated runtime does with this node",
                                "properties": {
                                    "fail": {"type": "boolean"},
                                    "drop_first": _COUNT,
                                    "delay_ms": _COUNT,
                                },
                            }
                        )
                    },
                }
            ),
        },
        "allOf": [_template_rule(kind, templates) for kind, templates in _TEMPLATES_OF.items()],
    }
)

_EDGE = _open(
    {
        "type": "object",
        "required": ["from_node", "to_node", "message_type"],
        "properties": {
            "edge_id": {**_ANY, "description": "Names the edge in the runtime's messages"},
            "from_node": {**_NAME, "description": "A node_id of the manifest"},
            "to_node": {**_NAME, "description": "A node_id of the manifest"},
            "message_type": _NAME,
        },
    }
)

_AMOUNT = {"type": "number", "minimum": 0, **_INTEGERS}
_MEMORY_SIZE = {
    "type": "string",
    "pattern": r"^\s*\d+(?:\.\d+)?\s*(?:[KMGTkmgt][Ii]?[Bb]?|[Bb])?\s*$",
    "examples": ["512Mi", "2GB"],
}


def _requirement(*forms: dict[str, Any]) -> dict[str, Any]:
    return {
        "anyOf": [
            *forms,
            _open({"type": "object", "required": ["min"], "properties": {"min": {"anyOf": forms}}}),
            _open(
                {
                    "type": "object",
                    "required": ["count"],
                    "not": {"required": ["min"]},
                    "properties": {"count": {"anyOf": forms}},
                }
            ),
        ]
    }


_ROOT_NODE = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": {"enum": list(ROOT_ROLES)}},
}

MANIFEST_SCHEMA: dict[str, Any] = _open(
    {
        "title": "Manifest",
        "description": "A workflow graph: its nodes (agents), the edges messages take between "
        "them, where messages enter, and what the runtime must provide. Node ids are unique, "
        "and edges, entrypoints and initial_inputs name nodes of the manifest.",
        "type": "object",
        "required": ["manifest_version", "graph_id", "nodes"],
        "properties": {
            "manifest_version": {
                "anyOf": [_NAME, {"type": "number", **_INTEGERS}],
                "examples": ["1"],
            },
            "graph_id": _NAME,
            "job_name": {"type": ["string", "null"], "description": "graph_id when left out"},
            "nodes": {"type": "array", "minItems": 1, "items": _NODE},
            "edges": {"type": "array", "items": _EDGE},
            "entrypoints": {
                "description": "Where initial inputs enter: node ids (or one); without them, "
                f"the nodes whose role is {' or '.join(ROOT_ROLES)}",
                "anyOf": [_NAME, {"type": "array", "items": _NAME}, {"type": "null"}],
            },
            "initial_inputs": {
                "description": "Messages by node id, or a list sent to every entrypoint",
                "type": ["object", "array", "null"],
                "items": _ANY,
                "additionalProperties": _ANY,
            },
            "daemon": {"type": "boolean"},
            "metadata": _OBJECT_OR_NULL,
            "policies": _open(
                {
                    "type": ["object", "null"],
                    "properties": {"recovery_mode": {"enum": list(RECOVERY_MODES)}},
                }
            ),
            "requirements": _open(
                {
                    "type": ["object", "null"],
                    "properties": {
                        "cpu": _requirement(_AMOUNT),
                        "memory": {
                            **_requirement(_AMOUNT, _MEMORY_SIZE),
                            "description": "MB as a number, or a size such as 512Mi",
                        },
                        "gpu": _requirement(_AMOUNT),
                    },
                }
            ),
        },
        "anyOf": [
            {
                "required": ["entrypoints"],
                "properties": {"entrypoints": {"anyOf": [_NAME, {"type": "array", "minItems": 1}]}},
            },
            {
                "required": ["nodes"],
                "properties": {
                    "entrypoints": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]},
                    "nodes": {"contains": _ROOT_NODE},
                },
            },
        ],
    }
)

# A payload's path: relative, POSIX, each segment a file or folder name.
_FORBIDDEN = r"\x00-\x1f\x7f-\x9f\\/\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SEGMENT = rf"(?!\.\.?(?:/|$))[^{_FORBIDDEN}]{{1,{MAX_SEGMENT_BYTES}}}"
PAYLOAD_PATH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PATH_BYTES,
    "pattern": rf"^(?![A-Za-z]:){_SEGMENT}(?:/{_SEGMENT})*$",
    "description": f"A relative path of at most {MAX_PATH_BYTES} bytes (UTF-8), segments "
    f"of at most {MAX_SEGMENT_BYTES}: no '.', '..' or empty segment, backslash, drive "
    "letter, control or bidirectional character",
    "examples": ["inputs/prompt.txt"],
}
BASE64_SCHEMA: dict[str, Any] = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
}
BUNDLE_ID_PATTERN = BUNDLE_ID.pattern

_MANIFEST = {"$ref": MANIFEST_REF}
# Other members of a request are ignored (their integers, as all, must fit in 64 bits).
OTHER_MEMBERS: dict[str, Any] = {"additionalProperties": _ANY}
# Not a manifest as text and as an object both.
NOT_BOTH_MANIFESTS: dict[str, Any] = {
    "required": ["manifest_json", "manifest"],
    "properties": {"manifest_json": {"type": "string"}, "manifest": {"type": "object"}},
}


def any_member_of(**kinds: str) -> list[dict[str, Any]]:
    """JSON Schema alternatives: at least one of these members, of its type, is given."""
    return [
        {"required": [name], "properties": {name: {"type": kind}}} for name, kind in kinds.items()
    ]


def decoded_base64(files: dict[str, str], field: str) -> dict[str, bytes]:
    """Files sent base64-encoded, as bytes; one that is not base64 is refused."""
    decoded = {}
    for path, data in files.items():
        try:
            decoded[path] = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"{field}[{path!r}] is not valid base64") from err
    return decoded


class ManifestFields(BaseModel):
    """A manifest (as text or as an object, not both) and its payload files, kept as
    bytes once the body is valid."""

    manifest_json: str | None = Field(
        None,
        description="The manifest as JSON text (an object)",
        pattern=r"^\s*\{",
        json_schema_extra={"contentMediaType": "application/json", "contentSchema": _MANIFEST},
    )
    manifest: dict[str, Any] | None = Field(
        None,
        description="The manifest as a JSON object",
        json_schema_extra={"anyOf": [_MANIFEST, {"type": "null"}]},
    )
    payloads: dict[str, str] = Field(
        default_factory=dict,
        description="Text files by path; a path may not come in payloads_base64 too",
        json_schema_extra={"propertyNames": PAYLOAD_PATH_SCHEMA},
    )
    payloads_base64: dict[str, str] = Field(
        default_factory=dict,
        description="Binary files by path, base64-encoded",
        json_schema_extra={
            "propertyNames": PAYLOAD_PATH_SCHEMA,
            "additionalProperties": BASE64_SCHEMA,
        },
    )

    _files: dict[str, bytes] = PrivateAttr(default_factory=dict)

    def _nothing_to_run(self) -> str | None:
        """Why a body that names nothing to run is refused (None: it may name nothing)."""
        return None

    @model_validator(mode="after")
    def _manifest_and_files(self) -> Self:
        if self.manifest_json is not None and self.manifest is not None:
            raise ValueError("give either manifest_json or manifest, not both")
        refusal = self._nothing_to_run()
        if refusal is not None:
            raise ValueError(refusal)
        clash = self.payloads.keys() & self.payloads_base64.keys()
        if clash:
            raise ValueError(f"payload {sorted(clash)[0]!r} is given twice")
        self._files = {path: text.encode() for path, text in self.payloads.items()}
        self._files.update(decoded_base64(self.payloads_base64, "payloads_base64"))
        return self

    @property
    def has_manifest(self) -> bool:
        return self.manifest_json is not None or self.manifest is not None

    @property
    def files(self) -> dict[str, bytes]:
        """Every payload as bytes, text and base64 ones alike."""
        return self._files
