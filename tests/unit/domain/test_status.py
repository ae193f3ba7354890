import pytest

from mn_api.domain.errors import InvalidTransitionError
from mn_api.domain.status import JobAction, JobStatus, check_transition, is_terminal


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_terminal_statuses_are_terminal(status: str) -> None:
    assert is_terminal(status)
    assert JobStatus(status).is_terminal


@pytest.mark.parametrize("status", ["pending", "queued", "running", "paused"])
def test_live_statuses_are_not_terminal(status: str) -> None:
    assert not is_terminal(status)


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING])
def test_live_jobs_can_be_paused(status: JobStatus) -> None:
    check_transition(JobAction.PAUSE, status)


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (JobAction.PAUSE, JobStatus.PAUSED),
        (JobAction.RESUME, JobStatus.RUNNING),
        (JobAction.RESUME, JobStatus.PENDING),
        (JobAction.CANCEL, JobStatus.COMPLETED),
        (JobAction.CANCEL, JobStatus.CANCELLED),
        (JobAction.PAUSE, JobStatus.FAILED),
        (JobAction.REPLAY, JobStatus.CANCELLED),
        (JobAction.REPLAY, JobStatus.FAILED),
    ],
)
def test_forbidden_transitions_raise(action: JobAction, status: JobStatus) -> None:
    with pytest.raises(InvalidTransitionError, match=action.value):
        check_transition(action, status)


def test_paused_job_can_be_resumed_and_cancelled() -> None:
    check_transition(JobAction.RESUME, JobStatus.PAUSED)
    check_transition(JobAction.CANCEL, JobStatus.PAUSED)


def test_completed_job_can_take_back_a_dead_letter() -> None:
    check_transition(JobAction.REPLAY, JobStatus.COMPLETED)
