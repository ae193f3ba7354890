"""Service declarations as later cores read them: the instance a declaration becomes once
its job runs (defaults, `${...}` templates, ids), the registry's filters, and the redaction
of secrets in what the preflight reports.

Sources (MirrorNeuronLab/MirrorNeuron): lib/mirror_neuron/service_spec.ex (normalisation,
templates, ids, initial status), service_registry.ex@32c2dae (defaults, filters),
service_check.ex (redaction). docs/LATER_SERVICES.md says what each answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from mn_api.adapters.memory.services._base import CoreRefusal

SENSITIVE_KEYS = (
    "authorization",
    "cookie",
    "token",
    "access_token",
    "api_key",
    "key",
    "password",
    "secret",
    "signature",
    "sig",
)
_TEMPLATE = re.compile(r"\$\{([^}]+)\}")
FILTERS = ("name", "node", "job_id", "agent_id", "status")


def elixir_text(value: Any) -> str:
    """`to_string/1` of a JSON value: numbers and booleans as written, a list of texts
    joined (a list is character data to Elixir); a map has no text, and the core fails."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    raise CoreRefusal("INTERNAL", f"protocol String.Chars not implemented for {_inspect(value)}")


def _inspect(value: Any) -> str:
    return orjson.dumps(value).decode()


def text_list(value: Any) -> list[str]:
    """`List.wrap` then `to_string` of each: one value alone is a list of one."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [elixir_text(item) for item in items]


def present(value: Any) -> bool:
    """Elixir's truth: anything but nil and false."""
    return value is not None and value is not False


def _template_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        # The simulation's own rendering: Elixir cannot render these at all.
        return _inspect(value)
    return elixir_text(value)


def _path_get(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def resolve_templates(value: Any, context: Mapping[str, Any]) -> Any:
    """Every `${a.b.c}` in the texts of `value` replaced by that path in `context` (an
    unknown path by nothing)."""
    if isinstance(value, Mapping):
        return {key: resolve_templates(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_templates(item, context) for item in value]
    if isinstance(value, str):
        return _TEMPLATE.sub(
            lambda m: _template_text(_path_get(context, m.group(1).split("."))), value
        )
    return value


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text) and 1 <= int(text) <= 65_535:
            return int(text)
    return None


def parse_port(value: Any) -> int | None:
    """A port as checks read it: 1..65535, as a number or its text."""
    port = _port(value)
    return port if port is not None and 1 <= port <= 65_535 else None


def normalize_check(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {"type": "tcp", "timeout_ms": 2_000, "interval_ms": 10_000}
    check = dict(value)
    check["type"] = str(check.get("type", "tcp")).lower()
    check.setdefault("name", value.get("type") or "check")
    check.setdefault("timeout_ms", 2_000)
    check.setdefault("interval_ms", 10_000)
    check.setdefault("required", True)
    check.setdefault("failures_before_critical", 1)
    return check


def normalize_checks(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, list):
        return [normalize_check(item) for item in value]
    if isinstance(value, Mapping):
        return [normalize_check(value)]
    return value


def _base(service: Mapping[str, Any]) -> dict[str, Any]:
    base = dict(service)
    base.setdefault("provider", "mirror_neuron")
    base.setdefault("origin", "internal")
    base["tags"] = text_list(base["tags"]) if "tags" in base else []
    meta = base.get("meta")
    base["meta"] = dict(meta) if isinstance(meta, Mapping) else {}
    base["checks"] = normalize_checks(base.get("checks")) if "checks" in base else []
    return base


def initial_status(service: Mapping[str, Any]) -> str:
    """`warning` until its checks first ran, for a service that has checks."""
    checks = service.get("checks")
    return "warning" if isinstance(checks, list) and checks else "passing"


def resolve_service(
    service: Mapping[str, Any], context: Mapping[str, Any], now: Callable[[], str]
) -> dict[str, Any]:
    """The instance a declaration becomes in `context` (its job, agent, node, env and
    config): templates filled in, the port a number, an id, a status and where it runs."""
    base = _base(service)
    scope = {**context, "service": base, "service_name": base.get("name")}
    resolved = resolve_templates(base, scope)
    port = _port(resolved.get("port"))
    if port is not None:
        resolved["port"] = port
    checks = resolved.get("checks")
    if isinstance(checks, list):
        check_scope = {**scope, "service": resolved}
        resolved["checks"] = [resolve_templates(c, check_scope) for c in checks]
    if "id" not in resolved:
        parts = [context.get("job_id"), context.get("agent_id") or "job", resolved.get("name")]
        resolved["id"] = ":".join(elixir_text(p) for p in parts if p is not None)
    status = initial_status(resolved)
    resolved.setdefault("status", status)
    resolved.setdefault("health", {"status": status, "checks": []})
    for key in ("job_id", "agent_id", "source_agent_id", "node", "bundle_root"):
        if context.get(key) is not None:
            resolved[key] = context[key]
    resolved["updated_at"] = now()
    return resolved


def register(service: Mapping[str, Any], now: Callable[[], str]) -> dict[str, Any]:
    """What the registry keeps of an instance: its defaults, and when it was written."""
    kept = dict(service)
    kept.setdefault("provider", "mirror_neuron")
    kept.setdefault("origin", "internal")
    kept.setdefault("status", "passing")
    kept.setdefault("health", {"status": kept["status"], "checks": []})
    stamp = now()
    kept.setdefault("created_at", stamp)
    kept["updated_at"] = stamp
    return kept


def query_filters(query: Mapping[str, Any], passing_default: bool = False) -> dict[str, Any]:
    """The filters a `query_json` object gives: its known keys (empty values left out),
    the texts to compare read at once, as the core reads them before looking;
    `passing_only` unless given is `passing_default` (true for ResolveService)."""
    known = (*FILTERS, "deployment_role", "tags", "passing_only")
    given = {k: v for k, v in query.items() if k in known and v is not None and v != ""}
    filters: dict[str, Any] = {
        k: elixir_text(v) for k, v in given.items() if k in (*FILTERS, "deployment_role")
    }
    filters["tags"] = text_list(given.get("tags"))
    filters["passing_only"] = given.get("passing_only", passing_default)
    return filters


def matches(service: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether a registered instance passes every filter (tags: all of them on it)."""
    for key in FILTERS:
        if key in filters and service.get(key) != filters[key]:
            return False
    passing_only = filters["passing_only"]
    if not isinstance(passing_only, bool):
        raise CoreRefusal("INTERNAL", "argument error")
    if passing_only and service.get("status") != "passing":
        return False
    wanted = filters["tags"]
    if wanted and not set(wanted) <= set(text_list(service.get("tags", []))):
        return False
    role = service.get("deployment_role")
    if "deployment_role" in filters:
        return role == filters["deployment_role"]
    # Canary (and other candidate) instances are not resolved unless asked for by role.
    return role in (None, "", "primary")


def _sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SENSITIVE_KEYS)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [(k, "[REDACTED]" if _sensitive(k) else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def redact(value: Any, path: str = "") -> Any:
    """Secrets out: values under sensitive keys, sensitive query parameters of URLs."""
    if isinstance(value, Mapping):
        return {
            str(k): "[REDACTED]"
            if _sensitive(str(k))
            else redact(v, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item, path) for item in value]
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            return redact_url(value)
        return "[REDACTED]" if _sensitive(path) else value
    return value
