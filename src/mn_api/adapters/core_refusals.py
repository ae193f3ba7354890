"""The domain errors for refusals of the core's later services (operations, job
definitions and runs, schedules, deployments, backups, node administration), whether the
refusal came over gRPC or from the simulation: by the status's name and the core's text.

Those services refuse client mistakes with INTERNAL as often as with a fitting code
(`confirmation_required`, `job_is_not_terminal`, `run_already_exists`...): such texts are
read for what they mean.
"""

from __future__ import annotations

from mn_api.domain import errors as e

_CONFLICT_TEXTS = (
    "active_runs",
    "not_terminal",
    "not terminal",
    "not_active",
    "job_data_busy",
    "must be paused",
    "expected awaiting_promotion",
    "is not running",
    "inactive_run",
)
_INVALID_TEXTS = ("confirmation_required", "is required", "must be", "invalid_job")
_EXISTS_TEXTS = ("already_exists", "already exists", "already join")


def refusal_error(code: str, message: str, *, kind: str = "record") -> e.DomainError:
    """The domain error for a later service's refusal; `kind` names what the call was
    about (`operation`, `schedule`...) for a NOT_FOUND."""
    text = _plain(message) or code.lower()
    lowered = text.lower()
    match code:
        case "NOT_FOUND":
            return e.RecordNotFoundError(kind, text)
        case "INVALID_ARGUMENT" | "OUT_OF_RANGE":
            # Some services refuse everything so (deployments: a promotion out of turn).
            if "not found" in lowered:
                return e.RecordNotFoundError(kind, text)
            if any(marker in lowered for marker in _CONFLICT_TEXTS):
                return e.InvalidTransitionError(text)
            return e.InvalidArgumentError(text)
        case "FAILED_PRECONDITION" | "ABORTED":
            return e.InvalidTransitionError(text)
        case "ALREADY_EXISTS":
            return e.AlreadyExistsError(text)
        case "UNIMPLEMENTED":
            return e.NotSupportedError("the connected core does not offer this service")
        case "UNAVAILABLE":
            return e.RuntimeUnavailableError(text)
        case "DEADLINE_EXCEEDED":
            return e.RuntimeTimeoutError(text)
        case "RESOURCE_EXHAUSTED":
            return e.RuntimeOverloadedError(text)
        case "UNAUTHENTICATED" | "PERMISSION_DENIED":
            return e.RuntimeAuthError(f"the core refused the gateway's credentials: {text}")
    if any(marker in lowered for marker in _EXISTS_TEXTS):
        return e.AlreadyExistsError(text)
    if any(marker in lowered for marker in _CONFLICT_TEXTS):
        return e.InvalidTransitionError(text)
    if any(marker in lowered for marker in _INVALID_TEXTS):
        return e.InvalidArgumentError(text)
    if "not found" in lowered:
        return e.RecordNotFoundError(kind, text)
    return e.RuntimeFailureError(f"the core failed: {text}")


def _plain(message: str) -> str:
    """The core's text without the double quotes its handlers wrap some texts in."""
    stripped = message.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return stripped
