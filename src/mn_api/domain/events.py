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

TERMINAL_EVENT_STATUS = {
    JOB_COMPLETED: "completed",
    JOB_FAILED: "failed",
    JOB_CANCELLED: "cancelled",
}


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


def iso_timestamp(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, as the runtime writes event timestamps."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dead_letter_view(index: int, event_index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """The dead-letter entry the API lists for a `dead_letter` event."""
    payload = event.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    return {
        "index": index,
        "event_index": event_index,
        "agent_id": payload.get("agent_id", event.get("agent_id")),
        "reason": payload.get("reason", event.get("reason")),
        "timestamp": event.get("timestamp"),
        "message": payload.get("message", event.get("message")),
    }
