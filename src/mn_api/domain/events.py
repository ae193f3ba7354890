"""Job events: the append-only history the runtime keeps for each job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mn_api.domain.documents import JsonDocument

JOB_PENDING = "job_pending"
JOB_VALIDATED = "job_validated"
JOB_SCHEDULED = "job_scheduled"
JOB_RUNNING = "job_running"
JOB_PAUSED = "job_paused"
JOB_RESUMED = "job_resumed"
JOB_COMPLETED = "job_completed"
JOB_FAILED = "job_failed"
JOB_CANCELLED = "job_cancelled"
AGENT_MESSAGE_RECEIVED = "agent_message_received"
DEAD_LETTER = "dead_letter"
DEAD_LETTER_REPLAYED = "dead_letter_replayed"
# Agents' own events on generation A cores.
AGGREGATOR_RECEIVED = "aggregator_received"
AGGREGATOR_DUPLICATE_IGNORED = "aggregator_duplicate_ignored"
SENSOR_OBSERVED = "sensor_observed"
EXECUTOR_LEASE_REQUESTED = "executor_lease_requested"
EXECUTOR_LEASE_ACQUIRED = "executor_lease_acquired"
EXECUTOR_LEASE_RELEASED = "executor_lease_released"
SANDBOX_JOB_COMPLETED = "sandbox_job_completed"
SANDBOX_JOB_FAILED = "sandbox_job_failed"
# An executor given again a message whose command had run sends the output it kept.
EXECUTOR_OUTPUT_REPLAYED = "executor_output_replayed"
# Sent by following streams of 1.2.5+ cores while a job is quiet: not a job event.
STREAM_HEARTBEAT = "stream_heartbeat"
HEARTBEAT_TYPES = frozenset({STREAM_HEARTBEAT, "heartbeat", ""})

TERMINAL_EVENT_STATUS = {
    JOB_COMPLETED: "completed",
    JOB_FAILED: "failed",
    JOB_CANCELLED: "cancelled",
}

# The job's status once an event of this type happened.
_STATUS_AFTER = {
    JOB_PENDING: "pending",
    JOB_VALIDATED: "pending",
    JOB_SCHEDULED: "queued",
    JOB_RUNNING: "running",
    JOB_PAUSED: "paused",
    JOB_RESUMED: "running",
    **TERMINAL_EVENT_STATUS,
}


def status_after(event_type: str, current: str | None) -> str | None:
    return _STATUS_AFTER.get(event_type, current)


@dataclass(slots=True)
class EventRecord:
    """One event of a job's history and its 0-based position in that history.

    Not frozen: a history is thousands of these, and a frozen dataclass takes twice as
    long to build. Nothing changes one after it is made.
    """

    index: int
    document: JsonDocument

    @property
    def value(self) -> Mapping[str, Any]:
        value = self.document.value
        return value if isinstance(value, (dict, Mapping)) else {}

    @property
    def type(self) -> str:
        kind = self.value.get("type")
        return kind if isinstance(kind, str) else ""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent by a following stream while nothing happens, so idle connections stay open."""


@dataclass(frozen=True, slots=True)
class RuntimeState(Heartbeat):
    """A heartbeat that says whether the runtime answers the stream's follower: not
    `available` once it has not for a while (what the stream shows may be stale; it goes on
    and resumes exactly when the runtime is back), `available` again when it does.
    Whoever ignores heartbeats ignores it too."""

    available: bool
    # ISO-8601 UTC: since when the runtime has not answered, or when it answered again.
    since: str
    # Why, when it does not answer: the error its follower last met.
    error: Exception | None = None


def iso_timestamp(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, as the runtime writes event timestamps."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, (dict, Mapping)) else {}


def dead_letter_view(index: int, event_index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """The dead-letter entry the API lists for a `dead_letter` event, from any release's shape.

    Releases up to 1.2.22 put `agent_id` and the whole `message` at the top level and give no
    reason; 1.2.31 adds `payload` = {reason, message_id, attempt}; other runtimes may keep
    everything inside `payload`. A reason is listed only when one was given.
    """
    payload = _mapping(event.get("payload"))
    message = event.get("message", payload.get("message"))
    envelope = _mapping(_mapping(message).get("envelope"))
    agent_id = event.get("agent_id") or payload.get("agent_id") or envelope.get("to")
    timestamp = event.get("timestamp")
    view: dict[str, Any] = {
        "index": index,
        "event_index": event_index,
        "agent_id": agent_id if isinstance(agent_id, str) else "unknown",
        "timestamp": timestamp if isinstance(timestamp, str) else "",
        "message": message if message is not None else {},
    }
    reason = payload.get("reason") or event.get("reason") or event.get("error")
    if isinstance(reason, str) and reason:
        view["reason"] = reason
    return view
