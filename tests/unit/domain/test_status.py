import pytest

from mn_api.domain.errors import InvalidTransitionError
from mn_api.domain.status import (
    ALREADY_TERMINAL,
    NOT_PAUSED,
    NOT_RUNNING,
    JobAction,
    JobStatus,
    check_transition,
    is_terminal,
)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_terminal_statuses_are_terminal(status: str) -> None:
    assert is_terminal(status)
    assert JobStatus(status).is_terminal


@pytest.mark.parametrize("status", ["pending", "running", "paused", "cancelling"])
def test_live_statuses_are_not_terminal(status: str) -> None:
    assert not is_terminal(status)


def test_queued_is_an_agent_status_not_a_job_status() -> None:
    with pytest.raises(ValueError):
        JobStatus("queued")


def test_only_a_running_job_can_be_paused() -> None:
    check_transition(JobAction.PAUSE, JobStatus.RUNNING)
    for status in set(JobStatus) - {JobStatus.RUNNING}:
        with pytest.raises(InvalidTransitionError, match=NOT_RUNNING):
            check_transition(JobAction.PAUSE, status)


@pytest.mark.parametrize(
    ("action", "status", "text"),
    [
        (JobAction.RESUME, JobStatus.RUNNING, NOT_PAUSED),
        (JobAction.RESUME, JobStatus.PENDING, NOT_PAUSED),
        (JobAction.RESUME, JobStatus.COMPLETED, NOT_PAUSED),
        (JobAction.CANCEL, JobStatus.COMPLETED, ALREADY_TERMINAL),
        (JobAction.CANCEL, JobStatus.CANCELLED, ALREADY_TERMINAL),
        (JobAction.REPLAY, JobStatus.CANCELLED, "replay"),
        (JobAction.REPLAY, JobStatus.FAILED, "replay"),
    ],
)
def test_forbidden_transitions_raise_with_the_cores_text(
    action: JobAction, status: JobStatus, text: str
) -> None:
    with pytest.raises(InvalidTransitionError, match=text):
        check_transition(action, status)


def test_paused_job_can_be_resumed_and_cancelled() -> None:
    check_transition(JobAction.RESUME, JobStatus.PAUSED)
    check_transition(JobAction.CANCEL, JobStatus.PAUSED)


def test_completed_job_can_take_back_a_dead_letter() -> None:
    check_transition(JobAction.REPLAY, JobStatus.COMPLETED)
