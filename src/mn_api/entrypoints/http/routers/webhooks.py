"""Webhooks: what a job's subscribers were told, and sending a delivery again."""

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path
from starlette.responses import Response

from mn_api.domain.events import iso_timestamp
from mn_api.domain.webhooks.records import Attempt, Delivery, Subscription
from mn_api.entrypoints.http import deps
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import AuthDep, authenticate
from mn_api.entrypoints.http.responses import json_response
from mn_api.entrypoints.http.routers import (
    API_PREFIX,
    RUNTIME_ERRORS,
    JobId,
    problems,
)

router = APIRouter(
    prefix=f"{API_PREFIX}/jobs/{{job_id}}/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(authenticate)],
    responses=problems(*RUNTIME_ERRORS),
)

DeliveryId = Annotated[
    str, Path(pattern=r"^whd_[0-9a-f]{24}$", description="The delivery's id (webhook-id)")
]


@router.get(
    "",
    response_model=m.JobWebhooksResponse,
    responses=problems(404, 422),
    summary="A job's webhooks and their deliveries",
)
async def list_webhooks(
    job_id: JobId,
    caller: AuthDep,
    use_case: deps.ListWebhooks,
) -> Response:
    """Each subscription, and each delivery with every attempt: when, how long, the status
    code or the error, and when the next retry is due. A receiver's query string is never
    shown; to a read-only token, nor is its path (receivers often keep a secret there)."""
    found = await use_case(job_id)
    return json_response(
        {
            "job_id": found.job_id,
            "subscriptions": [
                _subscription(s, with_path=caller.can_write) for s in found.subscriptions
            ],
            "deliveries": [_delivery(d) for d in found.deliveries],
        }
    )


@router.post(
    "/{delivery_id}/redeliver",
    response_model=m.WebhookDeliveryView,
    responses=problems(404, 409, 422),
    summary="Send a webhook delivery again",
)
async def redeliver_webhook(
    job_id: JobId,
    delivery_id: DeliveryId,
    use_case: deps.RedeliverWebhook,
) -> Response:
    """Sends the same body under the same `webhook-id` once, now, and answers with the
    delivery and its new attempt. A delivery that had succeeded stays delivered; one that
    was still being retried goes on being retried if this attempt fails."""
    return json_response(_delivery(await use_case(job_id, delivery_id)))


def _shown_url(url: str, *, with_path: bool) -> str:
    """The URL without its userinfo and query string, which may hold a receiver's token;
    without its path too unless `with_path` (the path of many receivers is their secret)."""
    parts = urlsplit(url)
    path = parts.path if with_path or parts.path in ("", "/") else "/redacted"
    return urlunsplit(
        parts._replace(
            netloc=parts.netloc.rpartition("@")[2],
            path=path,
            query="redacted" if parts.query else "",
            fragment="",
        )
    )


def _subscription(sub: Subscription, *, with_path: bool) -> dict[str, Any]:
    return {
        "id": sub.id,
        "url": _shown_url(sub.url, with_path=with_path),
        "events": list(sub.events),
        "source": sub.source,
        "created_at": iso_timestamp(sub.created_at),
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": delivery.id,
        "subscription_id": delivery.subscription_id,
        "event_type": delivery.event_type,
        "event_index": delivery.event_index,
        "state": delivery.state.value,
        "created_at": iso_timestamp(delivery.created_at),
        "attempts": [_attempt(a) for a in delivery.attempts],
    }
    if delivery.next_attempt_at is not None:
        view["next_attempt_at"] = iso_timestamp(delivery.next_attempt_at)
    return view


def _attempt(attempt: Attempt) -> dict[str, Any]:
    view: dict[str, Any] = {
        "at": iso_timestamp(attempt.at),
        "duration_ms": round(attempt.seconds * 1000, 1),
        "manual": attempt.manual,
    }
    if attempt.status_code is not None:
        view["status_code"] = attempt.status_code
    if attempt.error is not None:
        view["error"] = attempt.error
    return view
