"""A run's live inputs (JobService v2 SendRunInput): the input a manifest declares under
`contract.live_inputs`, and a payload checked against that input's schema, with the core's
texts (its LiveInput module).

A declaration is `{"entrypoint": node, "message_type": type, "schema": {...}}`: the
entrypoint must be one of the manifest's, and an edge must leave it with that message
type. The schema speaks a small part of JSON Schema: `enum`, `type` (object, array,
string, boolean, integer, number, null), `properties` (with `default`), `required`,
`additionalProperties: false`, `items`, `maxItems`, `minLength`, `maxLength`, `minimum`,
`maximum`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_PAYLOAD_BYTES = 16_384
MAX_IDEMPOTENCY_KEY_BYTES = 200
INPUT_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# The statuses of a run that takes live inputs.
ACTIVE_STATUSES = ("pending", "running")


class LiveInputError(ValueError):
    """The core's `{:invalid_live_input, reason}`: `reason` is its text."""


def check_request(run_id: str, input_id: str, idempotency_key: str) -> None:
    """The request's own fields, in the order the core checks them."""
    if not run_id.strip():
        raise LiveInputError("run_id is required")
    if not INPUT_ID.fullmatch(input_id):
        raise LiveInputError("input_id is invalid")
    key = idempotency_key.strip()
    if not key:
        raise LiveInputError("idempotency_key is required")
    if len(key.encode()) > MAX_IDEMPOTENCY_KEY_BYTES:
        raise LiveInputError("idempotency_key is too long")


def declaration(manifest: Mapping[str, Any], input_id: str) -> dict[str, Any]:
    """The declaration of `input_id` in the manifest, checked against its graph."""
    contract = manifest.get("contract")
    inputs = contract.get("live_inputs") if isinstance(contract, Mapping) else None
    declared = inputs.get(input_id) if isinstance(inputs, Mapping) else None
    if not isinstance(declared, Mapping):
        raise LiveInputError(f"input {input_id} is not declared")
    entrypoint = declared.get("entrypoint")
    kind = declared.get("message_type")
    if not isinstance(entrypoint, str):
        raise LiveInputError("live input declaration is invalid")
    entrypoints = manifest.get("entrypoints")
    if isinstance(entrypoints, str):
        entrypoints = [entrypoints]
    if entrypoint not in (entrypoints if isinstance(entrypoints, list) else []):
        raise LiveInputError("declared live input route is not permitted")
    if not isinstance(kind, str):
        raise LiveInputError("live input declaration is invalid")
    edges = manifest.get("edges")
    routed = any(
        isinstance(edge, Mapping)
        and (edge.get("from_node") or edge.get("from")) == entrypoint
        and edge.get("message_type") == kind
        for edge in (edges if isinstance(edges, list) else [])
    )
    if not routed:
        raise LiveInputError("declared live input route is not permitted")
    return dict(declared)


def checked_payload(payload: Any, schema: Any) -> Any:
    """The payload with the schema's defaults filled in, or LiveInputError."""
    if not isinstance(payload, dict) or not isinstance(schema, Mapping):
        raise LiveInputError("payload must be a JSON object")
    return _value(payload, schema, "$")


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _value(value: Any, schema: Mapping[str, Any], path: str) -> Any:
    allowed = schema.get("enum")
    if isinstance(allowed, list) and value not in allowed:
        raise LiveInputError(f"{path} is not an allowed value")
    kind = schema.get("type")
    if kind is not None and not _TYPES.get(kind, lambda _v: False)(value):
        raise LiveInputError(f"{path} must be {kind}")
    if isinstance(value, dict):
        return _object(value, schema, path)
    if isinstance(value, list):
        return _array(value, schema, path)
    if isinstance(value, str):
        return _string(value, schema, path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, schema, path)
    return value


def _object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    if schema.get("additionalProperties") is False:
        extra = [key for key in value if key not in properties]
        if extra:
            raise LiveInputError(f"{path} contains unknown fields: {', '.join(extra)}")
    defaults = {
        key: property_schema["default"]
        for key, property_schema in properties.items()
        if isinstance(property_schema, Mapping) and "default" in property_schema
    }
    value = {**defaults, **value}
    required = schema.get("required")
    if isinstance(required, list):
        missing = [str(key) for key in required if str(key) not in value]
        if missing:
            raise LiveInputError(f"{path} is missing required fields: {', '.join(missing)}")
    for key, property_schema in properties.items():
        if key in value and isinstance(property_schema, Mapping):
            value[key] = _value(value[key], property_schema, f"{path}.{key}")
    return value


def _array(value: list[Any], schema: Mapping[str, Any], path: str) -> list[Any]:
    most = schema.get("maxItems")
    if isinstance(most, int) and len(value) > most:
        raise LiveInputError(f"{path} has too many items")
    items = schema.get("items")
    items = items if isinstance(items, Mapping) else {}
    return [_value(item, items, f"{path}[{index}]") for index, item in enumerate(value)]


def _string(value: str, schema: Mapping[str, Any], path: str) -> str:
    longest, shortest = schema.get("maxLength"), schema.get("minLength")
    if isinstance(longest, int) and len(value) > longest:
        raise LiveInputError(f"{path} is too long")
    if isinstance(shortest, int) and len(value) < shortest:
        raise LiveInputError(f"{path} is too short")
    return value


def _number(value: float, schema: Mapping[str, Any], path: str) -> float:
    highest, lowest = schema.get("maximum"), schema.get("minimum")
    if _is_number(highest) and value > highest:
        raise LiveInputError(f"{path} is above the maximum")
    if _is_number(lowest) and value < lowest:
        raise LiveInputError(f"{path} is below the minimum")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
