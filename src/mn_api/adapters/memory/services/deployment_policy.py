"""What a deployment is, as the core reads one from a manifest: its key, its update
policy (defaults, and how values are read), and how two manifests of a key differ (the
same topology or not, which agents changed)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STRATEGIES = ("rolling", "canary", "blue-green")
HEALTH_CHECKS = ("checks", "agent_states")
DEFAULTS: dict[str, Any] = {
    "strategy": "rolling",
    "max_parallel": 1,
    "canary": 0,
    "min_healthy_ms": 10_000,
    "healthy_deadline_ms": 300_000,
    "progress_deadline_ms": 600_000,
    "health_check": "checks",
    "auto_promote": False,
    "auto_revert": False,
}
INTEGERS = (
    "max_parallel",
    "canary",
    "min_healthy_ms",
    "healthy_deadline_ms",
    "progress_deadline_ms",
)
LONG_RUNNING = ("service", "system")
# What an agent is, for telling whether an update changed it.
COMPARED = ("agent_type", "type", "role", "config", "resources", "constraints", "services")
_INTEGER = re.compile(r"^[+-]?\d+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def apply_options(
    manifest: dict[str, Any], key: str | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The manifest as the core deploys it: `deployment.key` set to the key asked for, and
    the update policy asked for merged over `policies.update`."""
    manifest = dict(manifest)
    deployment = manifest.get("deployment")
    deployment = (
        {k: v for k, v in (deployment or {}).items() if v is not None}
        if isinstance(deployment, dict)
        else {}
    )
    if key:
        deployment["key"] = key
    manifest["deployment"] = deployment
    policies = manifest.get("policies")
    policies = dict(policies) if isinstance(policies, dict) else {}
    if overrides:
        update = policies.get("update")
        policies["update"] = {**(update if isinstance(update, dict) else {}), **overrides}
    manifest["policies"] = policies
    return manifest


def deployment_key(manifest: Mapping[str, Any], override: str | None = None) -> str:
    """The key the manifest deploys under: the one asked for, else the first present of
    metadata `deployment_key`, `mn_deployment_key`, `mn_cli.deployment_key`,
    `deployment.key`, `policies.deployment_key`, then `job_name`, then `graph_id`."""
    metadata = _map(manifest.get("metadata"))
    candidates = (
        override,
        metadata.get("deployment_key"),
        metadata.get("mn_deployment_key"),
        _map(metadata.get("mn_cli")).get("deployment_key"),
        _map(manifest.get("deployment")).get("key"),
        _map(manifest.get("policies")).get("deployment_key"),
        manifest.get("job_name"),
    )
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    return str(manifest.get("graph_id", ""))


def deployment_id(key: str, number: int) -> str:
    return f"dep_{_UNSAFE.sub('-', key).strip('-')}_{number}"


def normalize(manifest: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The update policy: the manifest's `policies.update` with `overrides` over it, each
    known value read leniently (unknown ones fall back to their default; other keys kept)."""
    update = _map(_map(manifest.get("policies")).get("update"))
    policy = {**DEFAULTS, **update, **overrides}
    policy["strategy"] = _choice(policy["strategy"], STRATEGIES, "rolling", "_", "-")
    policy["health_check"] = _choice(policy["health_check"], HEALTH_CHECKS, "checks", "-", "_")
    for key in INTEGERS:
        policy[key] = _integer(policy[key], DEFAULTS[key])
    for key in ("auto_promote", "auto_revert"):
        policy[key] = _boolean(policy[key], DEFAULTS[key])
    return policy


def canary_count(policy: Mapping[str, Any], changed: int) -> int:
    """How many of `changed` agents (or blue/green jobs) go first as canaries."""
    canary = policy.get("canary") or 0
    if changed == 0:
        return 0
    if canary > 0:
        return min(canary, changed)
    return 1 if policy.get("strategy") == "canary" else 0


def job_type(manifest: Mapping[str, Any]) -> str:
    """The kind of job: the manifest's `job_type`, else a service for a daemon manifest
    (it runs until stopped), else a batch job."""
    declared = manifest.get("job_type")
    if isinstance(declared, str) and declared:
        return declared
    return "service" if manifest.get("daemon") is True else "batch"


def same_topology(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return _topology(left) == _topology(right)


def changed_agents(source: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """The target's agents that differ from (or are missing in) the source."""
    before = {n.get("node_id"): _compared(n) for n in _nodes(source)}
    return [
        str(n.get("node_id"))
        for n in _nodes(target)
        if before.get(n.get("node_id")) != _compared(n)
    ]


def _topology(manifest: Mapping[str, Any]) -> tuple[Any, ...]:
    nodes = sorted(str(n.get("node_id")) for n in _nodes(manifest))
    edges = sorted(
        tuple(str(e.get(k)) for k in ("from_node", "to_node", "message_type", "routing_mode"))
        for e in manifest.get("edges") or []
        if isinstance(e, dict)
    )
    entrypoints = manifest.get("entrypoints") or []
    if isinstance(entrypoints, str):
        entrypoints = [entrypoints]
    return nodes, edges, sorted(str(e) for e in entrypoints)


def _nodes(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [n for n in manifest.get("nodes") or [] if isinstance(n, dict)]


def _compared(node: Mapping[str, Any]) -> dict[str, Any]:
    return {key: node[key] for key in COMPARED if key in node}


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _choice(value: Any, choices: tuple[str, ...], default: str, old: str, new: str) -> str:
    if isinstance(value, str):
        value = value.lower().replace(old, new)
        if value in choices:
            return value
    return default


def _integer(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _INTEGER.match(value) and int(value) >= 0:
        return int(value)
    return default


def _boolean(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    return default
