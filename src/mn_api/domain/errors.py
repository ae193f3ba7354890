"""The domain's error vocabulary: every failure a use case can report, free of HTTP and gRPC."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every error the gateway reports on purpose."""

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


class BundleNotFoundError(DomainError):
    def __init__(self, bundle_id: str) -> None:
        super().__init__(f"bundle {bundle_id!r} was not found or has expired")
        self.bundle_id = bundle_id


class InvalidTransitionError(DomainError):
    """The job's current state forbids the requested operation."""


class AlreadyExistsError(DomainError):
    """The runtime already holds what the request would create (e.g. a replayed dead letter)."""


class ManifestInvalidError(DomainError):
    """The runtime refused the manifest; `errors` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors) or "the manifest is invalid")
        self.errors = list(errors)


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


class RuntimeOverloadedError(DomainError):
    """The runtime is shedding load (memory or queue pressure)."""


class RuntimeUnavailableError(DomainError):
    """The runtime cannot be reached right now."""


class RuntimeTimeoutError(DomainError):
    """The runtime did not answer within the deadline."""


class NotSupportedError(DomainError):
    """The runtime does not implement this operation."""


class RuntimeAuthError(DomainError):
    """The runtime refused the gateway's own credentials: a gateway misconfiguration."""


class RuntimeFailureError(DomainError):
    """The runtime failed in a way that has no better name."""


class SharedStateUnavailableError(DomainError):
    """The store the gateway's replicas share (Redis, or the local disk) cannot be used."""


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
