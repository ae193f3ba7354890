"""The domain's error vocabulary: every failure a use case can report, free of HTTP and gRPC."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every error the gateway reports on purpose."""

    # Whether the runtime may have acted on the request this error answers (the answer
    # was lost, not refused): such a request must never be run again under the same key.
    may_have_run = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class JobNotFoundError(DomainError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} was not found")
        self.job_id = job_id


class DeadLetterNotFoundError(DomainError):
    def __init__(self, job_id: str, index: int) -> None:
        super().__init__(f"job {job_id!r} has no dead letter at index {index}")
        self.job_id = job_id
        self.index = index


class HistoryWindowError(DomainError):
    """A live stream fell so far behind that the gateway no longer holds its next position
    (it keeps a window of a long history's newest events): it must resume from there."""

    def __init__(self, job_id: str, position: int, first: int) -> None:
        super().__init__(
            f"the history of job {job_id!r} before position {first} is no longer held; "
            f"reconnect with Last-Event-ID to resume from there (asked: {position})"
        )
        self.position = position
        self.first = first


class BundleNotFoundError(DomainError):
    def __init__(self, bundle_id: str) -> None:
        super().__init__(f"bundle {bundle_id!r} was not found or has expired")
        self.bundle_id = bundle_id


class NodeNotFoundError(DomainError):
    def __init__(self, node_name: str) -> None:
        super().__init__(f"node {node_name[:256]!r} is not a member of the cluster")
        self.node_name = node_name


class RecordNotFoundError(DomainError):
    """A record of the core's later services (an operation, a schedule, a deployment, a job
    definition, a run...) that the core does not know; `kind` names what was asked for."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class BlueprintNotFoundError(DomainError):
    """No blueprint of the catalogue, or no blueprint at a path, by that name."""


class LaunchPathNotAllowedError(DomainError):
    """A launch path outside the folders launches may read."""


class LaunchNotFoundError(DomainError):
    def __init__(self, progress_id: str) -> None:
        super().__init__(f"no launch {progress_id[:128]!r} is known here (or it has expired)")


class LaunchPathNotRegularError(DomainError):
    """A launch path, or a file of a blueprint, is neither a regular file nor a folder (a
    FIFO, a socket, a device): nothing of it is read."""


class LaunchInProgressError(DomainError):
    """A launch with this progress id is still running: it answers once it has finished."""

    def __init__(self, progress_id: str) -> None:
        super().__init__(
            f"launch {progress_id[:128]!r} is still running: ask again once it has finished, "
            "or follow its progress"
        )


class ProgressIdTakenError(DomainError):
    """Another caller's launch holds this progress id."""

    def __init__(self, progress_id: str) -> None:
        super().__init__(
            f"progress id {progress_id[:128]!r} is taken by another caller: choose another"
        )


class LaunchOutcomeUnknownError(DomainError):
    """The launch with this progress id failed after its job may have reached the runtime:
    launching again under the same id could start the job twice."""

    def __init__(self, progress_id: str) -> None:
        super().__init__(
            f"launch {progress_id[:128]!r} failed while its job was being submitted, so the "
            "job may have started: look for it among the jobs, or launch under a new "
            "progress id"
        )


class BlueprintReadsBusyError(DomainError):
    """Every reader of the host's blueprint files is busy and the queue in front of them is
    full: the request is refused at once rather than left waiting."""


class InvalidTransitionError(DomainError):
    """The job's current state forbids the requested operation."""


class CoordinatorGoneError(InvalidTransitionError):
    """No coordinator runs the job in the core's cluster: it has ended, or it was orphaned
    (its record still says it is live, e.g. after a core restart)."""

    def __init__(self, job_id: str, status: str) -> None:
        if status in ("completed", "failed", "cancelled"):
            detail = f"job {job_id!r} has ended ({status}): it can no longer be paused or resumed"
        else:
            detail = (
                f"job {job_id!r} is {status} on record, but no coordinator runs it in the "
                "core's cluster (it was orphaned, e.g. by a core restart); cancelling it ends it"
            )
        super().__init__(detail)
        self.job_id = job_id
        self.status = status


class AlreadyExistsError(DomainError):
    """The runtime already holds what the request would create (e.g. a replayed dead letter)."""


# An answer lists this many problems at most, each cut to a readable length, with the
# total beside them: a manifest of a million bad nodes still gets a small answer.
MAX_LISTED_PROBLEMS = 100
MAX_PROBLEM_CHARS = 500


class ManifestInvalidError(DomainError):
    """The runtime refused the manifest; `errors` lists its first problems, `total` counts
    them all."""

    def __init__(self, errors: Sequence[str], total: int | None = None) -> None:
        listed = [_cut(problem) for problem in errors[:MAX_LISTED_PROBLEMS]]
        self.total = max(total if total is not None else len(errors), len(listed))
        if not listed:
            detail = "the manifest is invalid"
        elif self.total == 1:
            detail = listed[0]
        else:
            detail = f"the manifest has {self.total} problems, the first: {listed[0]}"
        super().__init__(detail)
        self.errors = listed


def _cut(problem: str) -> str:
    return problem if len(problem) <= MAX_PROBLEM_CHARS else problem[: MAX_PROBLEM_CHARS - 1] + "…"


class RequirementsNotMetError(DomainError):
    """The runtime's nodes cannot provide what the manifest requires (not a state conflict)."""


class InvalidArgumentError(DomainError):
    """The runtime refused an argument of a call other than a submission."""


class RequestValidationError(DomainError):
    """The gateway refused a request before it reached the runtime."""

    def __init__(self, detail: str, fields: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(detail)
        self.fields = list(fields)


class UnsafePayloadPathError(DomainError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"payload path is unsafe: {reason}")
        self.path = path
        self.reason = reason


class BundleRejectedError(DomainError):
    """An uploaded bundle broke one of the archive rules; `code` names which."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class TooLargeForRuntimeError(DomainError):
    """The request, once built, would exceed what one message to the runtime can carry: no
    retry can help, so nothing is stored or sent."""

    def __init__(self, detail: str, limit_bytes: int) -> None:
        super().__init__(detail)
        self.limit_bytes = limit_bytes


class InsufficientStorageError(DomainError):
    """The bundle store is full: its quota, or the disk under it."""


class BundleStoreUnavailableError(DomainError):
    """The bundle store cannot be written (a read-only or missing folder)."""


class RuntimeOverloadedError(DomainError):
    """The runtime is shedding load (memory or queue pressure)."""


class RuntimeUnavailableError(DomainError):
    """The runtime cannot be reached right now; `may_have_run` when the connection was lost
    after the request went out, rather than never made."""

    def __init__(self, detail: str, *, may_have_run: bool = False) -> None:
        super().__init__(detail)
        self.may_have_run = may_have_run


class StateStoreDownError(RuntimeUnavailableError):
    """The core answers, but cannot reach the store that keeps its jobs (its Redis): what it
    says meanwhile (no job found, no job listed, no node) is not the truth, and nothing it
    refuses was created."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "the runtime cannot reach its state store: jobs can be neither read nor "
            "submitted until it is back"
        )


class RuntimeTimeoutError(DomainError):
    """The runtime did not answer within the deadline (it may still have acted)."""

    may_have_run = True


class NotSupportedError(DomainError):
    """The runtime does not implement this operation, or the use case was built without
    what it needs (a SubmitJob without a bundle store, asked to submit a bundle)."""


class RuntimeAuthError(DomainError):
    """The runtime refused the gateway's own credentials: a gateway misconfiguration."""


class RuntimeProtocolError(DomainError):
    """The runtime answered something the gateway cannot read (not JSON where JSON belongs):
    nothing of it is passed on."""


class RuntimeFailureError(DomainError):
    """The runtime failed in a way that has no better name (perhaps half way)."""

    may_have_run = True


class SharedStateUnavailableError(DomainError):
    """The store the gateway's replicas share (Redis, or the local disk) cannot be used."""


class IdempotencyOutcomeUnknownError(DomainError):
    """The first request with this key may have reached the runtime, but its answer was
    lost: running it again could do the work twice."""


class IdempotencyKeyReusedError(DomainError):
    """The Idempotency-Key was already used for a different request."""


class IdempotencyInFlightError(DomainError):
    """A request with the same Idempotency-Key is still being answered."""


class InvalidIdempotencyKeyError(DomainError):
    """The Idempotency-Key header is empty, too long or holds unusable characters."""


class RateLimitedError(DomainError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("too many requests; slow down")
        self.retry_after_seconds = retry_after_seconds


class WebhookUrlNotAllowedError(DomainError):
    """A webhook URL the gateway refuses to call; `detail` says why."""


class WebhookDeliveryNotFoundError(DomainError):
    def __init__(self, job_id: str, delivery_id: str) -> None:
        super().__init__(f"job {job_id!r} has no webhook delivery {delivery_id!r}")


class WebhookDeliveryBusyError(DomainError):
    """The delivery is being sent right now (by this gateway or another replica)."""


class JoinHostNotAllowedError(DomainError):
    """A node to join from a host the gateway may not contact (MN_API_CLUSTER_JOIN_HOSTS)."""


class JoinRefusedError(DomainError):
    """The node to join refused the join token."""


class RemoteCoreUnavailableError(DomainError):
    """The node to join could not be reached (or did not answer in time)."""
