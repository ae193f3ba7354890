"""What a webhook is made of: subscriptions to a job's events, the deliveries they cause
and their attempts, and the jobs watched for them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from mn_api.domain import events as ev

# What a subscription may name: the job's own events, as the runtime writes them.
SUBSCRIBABLE_EVENTS = frozenset(
    {
        ev.JOB_PENDING,
        ev.JOB_VALIDATED,
        ev.JOB_SCHEDULED,
        ev.JOB_RUNNING,
        ev.JOB_PAUSED,
        ev.JOB_RESUMED,
        ev.JOB_COMPLETED,
        ev.JOB_FAILED,
        ev.JOB_CANCELLED,
        ev.AGENT_MESSAGE_RECEIVED,
        ev.DEAD_LETTER,
        ev.DEAD_LETTER_REPLAYED,
        "agent_recovery_started",
        "agent_recovered",
        "sandbox_job_completed",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = (ev.JOB_COMPLETED, ev.JOB_FAILED, ev.JOB_CANCELLED)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # a 2xx answer came back
    FAILED = "failed"  # no more attempts: exhausted, 410 Gone, or refused


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    job_id: str
    url: str
    events: tuple[str, ...]
    source: str  # "job" (asked for at submission) or "global" (MN_API_WEBHOOK_URLS)
    created_at: float

    def wants(self, event_type: str) -> bool:
        return event_type in self.events

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "url": self.url,
            "events": list(self.events),
            "source": self.source,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(
            id=data["id"],
            job_id=data["job_id"],
            url=data["url"],
            events=tuple(data["events"]),
            source=data["source"],
            created_at=data["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try: when, how long, and what came back (a status code or an error)."""

    at: float
    seconds: float
    status_code: int | None = None
    error: str | None = None
    manual: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def receiver_of(url: str) -> str:
    """Who answers a URL: its scheme, host and port, the unit webhook concurrency is
    counted in (a receiver's paths share its server)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").rstrip(".")
    return f"{parts.scheme.lower()}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event told to one subscription; retried until delivered or given up."""

    id: str
    job_id: str
    subscription_id: str
    url: str
    event_type: str
    event_index: int
    body: str
    created_at: float
    state: DeliveryState = DeliveryState.PENDING
    next_attempt_at: float | None = None
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def receiver(self) -> str:
        return receiver_of(self.url)

    def postponed(self, until: float) -> Delivery:
        """Unchanged, but not due before `until` (its receiver is busy)."""
        return replace(self, next_attempt_at=until)

    def with_attempt(
        self, attempt: Attempt, state: DeliveryState, next_at: float | None
    ) -> Delivery:
        return replace(
            self, attempts=(*self.attempts, attempt), state=state, next_attempt_at=next_at
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "subscription_id": self.subscription_id,
            "url": self.url,
            "event_type": self.event_type,
            "event_index": self.event_index,
            "body": self.body,
            "created_at": self.created_at,
            "state": self.state.value,
            "next_attempt_at": self.next_attempt_at,
            "attempts": [
                {
                    "at": a.at,
                    "seconds": a.seconds,
                    "status_code": a.status_code,
                    "error": a.error,
                    "manual": a.manual,
                }
                for a in self.attempts
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(
            id=data["id"],
            job_id=data["job_id"],
            subscription_id=data["subscription_id"],
            url=data["url"],
            event_type=data["event_type"],
            event_index=data["event_index"],
            body=data["body"],
            created_at=data["created_at"],
            state=DeliveryState(data["state"]),
            next_attempt_at=data["next_attempt_at"],
            attempts=tuple(Attempt(**a) for a in data["attempts"]),
        )


@dataclass(frozen=True, slots=True)
class Watch:
    """A job whose events are followed for its subscriptions, from `cursor` on."""

    job_id: str
    cursor: int = -1
    status: str | None = None


def delivery_id(subscription_id: str, event_index: int) -> str:
    """The same subscription and event always give the same id, so finding an event twice
    (after a restart, or on two replicas) never makes a second delivery."""
    digest = hashlib.sha256(f"{subscription_id}:{event_index}".encode()).hexdigest()
    return f"whd_{digest[:24]}"


def delivery_body(
    delivery: str, job_id: str, status: str | None, event_type: str, event_raw: bytes, at: str
) -> str:
    """The JSON body receivers get; the event goes in exactly as the runtime wrote it."""
    head = json.dumps(
        {
            "id": delivery,
            "type": event_type,
            "job_id": job_id,
            "status": status,
            "occurred_at": at,
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"event":{event_raw.decode()}}}'
