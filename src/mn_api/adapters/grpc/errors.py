"""The one translation table from the core's gRPC refusals to the domain's errors.

Cores of different releases refuse the same thing with different codes (CORE.md §3): up to
1.2.22 every failure of Cancel/Pause/Resume is INTERNAL, and 1.2.31 answers NOT_FOUND for
"job is not running". Refusals of those calls are therefore read by their text first.
"""

from __future__ import annotations

import logging

import grpc

from mn_api.domain import errors as e

log = logging.getLogger("mn_api.grpc")

CONTROL_RPCS = frozenset({"CancelJob", "PauseJob", "ResumeJob"})
# Codes under which cores send a refused transition or an unknown job on control calls.
REFUSAL_CODES = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
_NOT_FOUND_TEXTS = ("not found", "unknown job", "no such job", "does not exist")
# Cores say "not running" of an unknown job as well as of one whose status refuses the
# call: such a refusal is resolved by asking whether the job exists.
_AMBIGUOUS_TEXTS = ("not running",)
_TRANSITION_TEXTS = (
    "not paused",
    "terminal state",
    "already cancelled",
    "already paused",
    "already completed",
    "already finished",
    "cannot ",
)
_REQUIREMENT_PREFIXES = ("requirements_not_met", "service_requirements_not_met")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "e": "\x1b", "0": "\0"}


# Generation A cores refuse Pause/Resume of an unknown job, a finished one and an orphaned one
# alike with this text: only GetJob can tell them apart.
COORDINATOR_GONE_TEXT = "is not running in the connected cluster"


def refusal_meaning(text: str) -> str | None:
    """`not_found` or `transition` when a control refusal's text says which, `ambiguous`
    when it may mean either (the job's existence decides); else None."""
    lowered = text.lower()
    if any(marker in lowered for marker in _AMBIGUOUS_TEXTS):
        return "ambiguous"
    if any(marker in lowered for marker in _NOT_FOUND_TEXTS):
        return "not_found"
    if any(marker in lowered for marker in _TRANSITION_TEXTS):
        return "transition"
    return None


def _elixir_strings(text: str) -> list[str] | None:
    """The strings of an Elixir list literal such as `["a", "b"]`; None if it is not one."""
    items: list[str] = []
    i, end = 1, len(text) - 1
    while True:
        while i < end and text[i] in " \t\r\n,":
            i += 1
        if i >= end:
            return items
        if text[i] != '"':
            return None
        i += 1
        chars: list[str] = []
        while i < end and text[i] != '"':
            if text[i] == "\\" and i + 1 < end:
                i += 1
                chars.append(_ESCAPES.get(text[i], text[i]))
            else:
                chars.append(text[i])
            i += 1
        if i >= end:
            return None
        items.append("".join(chars))
        i += 1


def core_text(text: str) -> str:
    """A core's message as plain text: generation A cores send some of them quoted as
    Elixir's `inspect` writes a string (`"unexpected byte ... (\\"n\\")"`)."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"':
        items = _elixir_strings(f"[{stripped}]")
        if items is not None and len(items) == 1:
            return items[0]
    return text


def split_problems(text: str) -> list[str]:
    """A manifest refusal's problems, one each: cores send an Elixir list literal, other
    servers `; `-separated text, and text that is not JSON the parser's message alone."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        items = _elixir_strings(stripped)
        if items:
            return items
    return [part for part in stripped.split("; ") if part] or [stripped]


def translate(
    err: grpc.aio.AioRpcError,
    *,
    rpc: str,
    job_id: str | None = None,
    node_name: str | None = None,
) -> e.DomainError:
    """The domain error for a failed call; the gRPC error stays as its cause."""
    code = err.code()
    details = core_text(err.details() or code.name.lower())
    # The caller receives the error: the gateway's HTTP side logs the 5xx it answers with
    # (embedding programs decide for themselves); here only for debugging.
    log.debug("core call %s failed: %s %.300s", rpc, code.name, details)
    meaning = refusal_meaning(details) if rpc in CONTROL_RPCS and code in REFUSAL_CODES else None
    match code:
        case _ if meaning in ("transition", "ambiguous"):
            error: e.DomainError = e.InvalidTransitionError(details)
        case _ if meaning == "not_found" and job_id is not None:
            error = e.JobNotFoundError(job_id)
        case grpc.StatusCode.INVALID_ARGUMENT if rpc == "SubmitJob":
            error = e.ManifestInvalidError(split_problems(details))
        case grpc.StatusCode.FAILED_PRECONDITION if rpc == "SubmitJob" and details.startswith(
            _REQUIREMENT_PREFIXES
        ):
            error = e.RequirementsNotMetError(details)
        case grpc.StatusCode.INVALID_ARGUMENT:
            error = e.InvalidArgumentError(details)
        case grpc.StatusCode.NOT_FOUND if job_id is not None:
            error = e.JobNotFoundError(job_id)
        case grpc.StatusCode.NOT_FOUND if node_name is not None:
            error = e.NodeNotFoundError(node_name)
        case grpc.StatusCode.NOT_FOUND:
            error = e.RuntimeFailureError(f"the core found nothing: {details}")
        case grpc.StatusCode.ALREADY_EXISTS:
            error = e.AlreadyExistsError(details)
        case grpc.StatusCode.FAILED_PRECONDITION:
            error = e.InvalidTransitionError(details)
        case grpc.StatusCode.RESOURCE_EXHAUSTED:
            error = e.RuntimeOverloadedError(details)
        case grpc.StatusCode.UNAVAILABLE:
            # Only a connection never made proves the request never went out.
            error = e.RuntimeUnavailableError(
                "the runtime cannot be reached",
                may_have_run="failed to connect" not in details.lower(),
            )
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


def is_unclear_refusal(err: grpc.aio.AioRpcError, rpc: str) -> bool:
    """A control call refused with a text that does not say whether the job is unknown."""
    return (
        rpc in CONTROL_RPCS
        and err.code() in REFUSAL_CODES
        and refusal_meaning(core_text(err.details() or "")) in (None, "ambiguous")
    )
