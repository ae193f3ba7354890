"""The documents of operations: the options the core takes, the counters it works out
on every read, and the answers of the older RPCs that run on operations (CancelAllJobs,
ClearJobs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Item statuses the counters count as deferred, and as skipped.
DEFERRED_COUNTED = frozenset({"deferred", "cancellation_pending", "waiting"})
SKIPPED_COUNTED = frozenset({"skipped", "ignored"})
OPTION_KEYS = ("node_name", "reason", "dry_run", "deadline_ms", "ignore_system_jobs")


def cancel_all_result(document: Mapping[str, Any]) -> dict[str, Any]:
    """JobService.CancelAllJobs' result_json, from its operation's document."""
    results = []
    items = sorted(document.get("items", {}).values(), key=lambda i: i.get("started_at") or "")
    for item in items:
        entry = {
            **(item.get("result") or {}),
            "job_id": item["target"].get("job_id") or item["item_id"],
            "status": item["status"],
        }
        if item.get("error") is not None:
            entry["error"] = item["error"]
        results.append(entry)
    statuses = [entry["status"] for entry in results]
    return {
        "operation_id": document["operation_id"],
        "cancelled_count": sum(s in ("cancelled", "cancellation_pending") for s in statuses),
        "pending_count": statuses.count("cancellation_pending"),
        "failed_count": statuses.count("failed"),
        "results": results,
        "version": 1,
    }


def cleared_count(document: Mapping[str, Any]) -> int:
    """JobService.ClearJobs' cleared_count: the items cleared."""
    return sum(item["status"] == "cleared" for item in document.get("items", {}).values())


def option_attrs(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options the core takes from options_json (those without a value dropped)."""
    deadline = options.get("deadline_ms")
    positive = isinstance(deadline, int) and not isinstance(deadline, bool) and deadline > 0
    node = options.get("node_name")
    if node is None or node is False:
        node = options.get("node")
    taken = {
        "node_name": node,
        "reason": options.get("reason"),
        "dry_run": options.get("dry_run"),
        "deadline_ms": deadline if positive else None,
        "ignore_system_jobs": options.get("ignore_system_jobs"),
    }
    return {key: value for key, value in taken.items() if value is not None}


def counters_of(statuses: list[str], total: int) -> dict[str, int]:
    """The counters as the core works them out on every read: `started` and `finished`
    count every item (running ones too), and any status not failed, deferred or skipped
    counts as succeeded (running included)."""
    counters = {
        "total": total,
        "started": len(statuses),
        "finished": len(statuses),
        "succeeded": 0,
        "failed": 0,
        "deferred": 0,
        "skipped": 0,
    }
    for status in statuses:
        if status == "failed":
            counters["failed"] += 1
        elif status in DEFERRED_COUNTED:
            counters["deferred"] += 1
        elif status in SKIPPED_COUNTED:
            counters["skipped"] += 1
        else:
            counters["succeeded"] += 1
    return counters
