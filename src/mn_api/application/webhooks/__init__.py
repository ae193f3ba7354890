"""Webhooks: subscriptions checked at submission, deliveries signed and retried."""

from mn_api.application.webhooks.config import WebhookConfig
from mn_api.application.webhooks.sender import DeliverySender
from mn_api.application.webhooks.subscriptions import (
    PlannedSubscription,
    WebhookRequest,
    Webhooks,
)
from mn_api.application.webhooks.worker import WebhookWorker

__all__ = [
    "DeliverySender",
    "PlannedSubscription",
    "WebhookConfig",
    "WebhookRequest",
    "WebhookWorker",
    "Webhooks",
]
