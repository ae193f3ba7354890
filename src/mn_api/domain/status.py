"""Job statuses and the transitions the runtime allows between them."""

from __future__ import annotations

from enum import StrEnum

from mn_api.domain.errors import InvalidTransitionError


class JobStatus(StrEnum):
    """A job's status as cores report it (`queued` is an agent status, never a job's)."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    # 1.2.31: a cancel was accepted and the job is winding down.
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE_STATUSES = frozenset(set(JobStatus) - TERMINAL_STATUSES)


class JobAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    REPLAY = "replay"


# The texts cores give when they refuse a transition; gateways read them to tell a refused
# transition from an unknown job, since most releases send both with the same code.
NOT_RUNNING = "job is not running"
NOT_PAUSED = "job is not paused"
ALREADY_TERMINAL = "job is already in a terminal state"

_ALLOWED_FROM: dict[JobAction, frozenset[JobStatus]] = {
    JobAction.PAUSE: frozenset({JobStatus.RUNNING}),
    JobAction.RESUME: frozenset({JobStatus.PAUSED}),
    JobAction.CANCEL: frozenset(
        {JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLING}
    ),
    # A dead letter no longer keeps its job running, so a finished job may take one back.
    JobAction.REPLAY: frozenset(
        {JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.COMPLETED}
    ),
}

_REFUSAL: dict[JobAction, str] = {
    JobAction.PAUSE: NOT_RUNNING,
    JobAction.RESUME: NOT_PAUSED,
    JobAction.CANCEL: ALREADY_TERMINAL,
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def check_transition(action: JobAction, status: JobStatus) -> None:
    """Raise InvalidTransitionError, with the core's text, unless `action` is allowed."""
    if status not in _ALLOWED_FROM[action]:
        refusal = _REFUSAL.get(action) or f"cannot {action.value} a job that is {status.value}"
        raise InvalidTransitionError(refusal)
