"""Job statuses and the transitions the runtime allows between them."""

from __future__ import annotations

from enum import StrEnum

from mn_api.domain.errors import InvalidTransitionError


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    REPLAY = "replay"


_ALLOWED_FROM: dict[JobAction, frozenset[JobStatus]] = {
    JobAction.PAUSE: frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING}),
    JobAction.RESUME: frozenset({JobStatus.PAUSED}),
    JobAction.CANCEL: frozenset(
        {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}
    ),
    # A dead letter no longer keeps its job running, so a finished job may take one back.
    JobAction.REPLAY: frozenset(
        {
            JobStatus.PENDING,
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.PAUSED,
            JobStatus.COMPLETED,
        }
    ),
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def check_transition(action: JobAction, status: JobStatus) -> None:
    """Raise InvalidTransitionError unless `action` is allowed on a job in `status`."""
    if status not in _ALLOWED_FROM[action]:
        raise InvalidTransitionError(f"cannot {action.value} a job that is {status.value}")
