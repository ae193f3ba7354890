"""Endpoint dependencies: objects the container built once, handed out per request.

The container resolves every use case and service when the app is created; a request
only looks its object up. No resolution, and no thread-pool hop, happens per request.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from mn_api.container import Container

# What endpoints may ask for: use cases and the few services routes use directly.
PROVIDED = (
    "settings",
    "telemetry",
    "idempotency",
    "submit_job",
    "submit_bundle",
    "list_jobs",
    "get_job",
    "get_job_graph",
    "list_events",
    "stream_events",
    "launch_blueprint",
    "launch_log",
    "blueprints",
    "workflow_progress",
    "list_dead_letters",
    "replay_dead_letter",
    "cancel_job",
    "pause_job",
    "resume_job",
    "clear_jobs",
    "cancel_all_jobs",
    "get_system_summary",
    "get_runtime_metrics",
    "check_readiness",
    "runtime_report",
    "list_webhooks",
    "redeliver_webhook",
)


def resolve(container: Container) -> dict[str, Any]:
    return {name: getattr(container, name)() for name in PROVIDED}


def provided(name: str) -> Any:
    """`Depends` on the object the container built under `name`."""
    if name not in PROVIDED:
        raise ValueError(f"{name!r} is not provided to endpoints")

    async def dependency(request: Request) -> Any:
        return request.app.state.provided[name]

    dependency.__name__ = f"provided_{name}"
    return Depends(dependency)
