"""The one translation table from gRPC status codes to the domain's errors."""

from __future__ import annotations

import logging

import grpc

from mn_api.domain import errors as e

log = logging.getLogger("mn_api.grpc")

# How the core separates the problems it found in a manifest.
MANIFEST_ERROR_SEPARATOR = "; "


def translate(err: grpc.aio.AioRpcError, *, rpc: str, job_id: str | None = None) -> e.DomainError:
    """The domain error for a failed call; the gRPC error stays as its cause."""
    code = err.code()
    details = err.details() or code.name.lower()
    log.warning("core call %s failed: %s %s", rpc, code.name, details)
    match code:
        case grpc.StatusCode.INVALID_ARGUMENT if rpc == "SubmitJob":
            error: e.DomainError = e.ManifestInvalidError(details.split(MANIFEST_ERROR_SEPARATOR))
        case grpc.StatusCode.INVALID_ARGUMENT:
            error = e.InvalidArgumentError(details)
        case grpc.StatusCode.NOT_FOUND if job_id is not None:
            error = e.JobNotFoundError(job_id)
        case grpc.StatusCode.NOT_FOUND:
            error = e.RuntimeFailureError(f"the core found nothing: {details}")
        case grpc.StatusCode.ALREADY_EXISTS:
            error = e.AlreadyExistsError(details)
        case grpc.StatusCode.FAILED_PRECONDITION:
            error = e.InvalidTransitionError(details)
        case grpc.StatusCode.RESOURCE_EXHAUSTED:
            error = e.RuntimeOverloadedError(details)
        case grpc.StatusCode.UNAVAILABLE:
            error = e.RuntimeUnavailableError("the runtime cannot be reached")
        case grpc.StatusCode.DEADLINE_EXCEEDED | grpc.StatusCode.CANCELLED:
            error = e.RuntimeTimeoutError("the runtime did not answer in time")
        case grpc.StatusCode.UNIMPLEMENTED:
            error = e.NotSupportedError(f"{rpc} is not supported by this core")
        case grpc.StatusCode.UNAUTHENTICATED | grpc.StatusCode.PERMISSION_DENIED:
            error = e.RuntimeAuthError("the core refused the gateway's credentials")
        case _:
            error = e.RuntimeFailureError(f"the runtime failed ({code.name.lower()})")
    error.__cause__ = err
    return error
