"""Webhooks: which receivers may be called, how deliveries are signed, retried and kept."""

from __future__ import annotations

from typing import Self

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    model_validator,
)

from mn_api.config._common import (
    _split,
)
from mn_api.domain.errors import WebhookUrlNotAllowedError
from mn_api.domain.webhooks.records import SUBSCRIBABLE_EVENTS
from mn_api.domain.webhooks.signing import parse_secrets
from mn_api.domain.webhooks.url_policy import UrlPolicy


class WebhookSettings(BaseModel):
    """Webhooks: which receivers may be called, how deliveries are signed, retried and kept."""

    webhook_allowed_hosts_raw: str | None = Field(
        None, validation_alias="MN_API_WEBHOOK_ALLOWED_HOSTS"
    )

    webhook_insecure_hosts_raw: str | None = Field(
        None, validation_alias="MN_API_WEBHOOK_INSECURE_HOSTS"
    )

    webhook_urls_raw: str | None = Field(None, validation_alias="MN_API_WEBHOOK_URLS")

    webhook_events_raw: str | None = Field(None, validation_alias="MN_API_WEBHOOK_EVENTS")

    webhook_secret: SecretStr | None = Field(None, validation_alias="MN_API_WEBHOOK_SECRET")

    webhook_max_attempts: int = Field(
        8, validation_alias="MN_API_WEBHOOK_MAX_ATTEMPTS", ge=1, le=50
    )

    webhook_retry_base_seconds: float = Field(
        15.0, validation_alias="MN_API_WEBHOOK_RETRY_BASE_SECONDS", gt=0
    )

    webhook_timeout_seconds: float = Field(
        10.0, validation_alias="MN_API_WEBHOOK_TIMEOUT_SECONDS", gt=0, le=300
    )

    webhook_lease_seconds: float = Field(
        60.0, validation_alias="MN_API_WEBHOOK_LEASE_SECONDS", gt=0
    )

    webhook_poll_seconds: float = Field(
        1.0, validation_alias="MN_API_WEBHOOK_POLL_SECONDS", gt=0, le=60
    )

    webhook_retention_seconds: float = Field(
        7 * 86400, validation_alias="MN_API_WEBHOOK_RETENTION_SECONDS", gt=0
    )

    webhook_concurrency: int = Field(
        128, validation_alias="MN_API_WEBHOOK_CONCURRENCY", ge=1, le=4096
    )

    webhook_receiver_concurrency: int = Field(
        4, validation_alias="MN_API_WEBHOOK_RECEIVER_CONCURRENCY", ge=1, le=4096
    )

    @model_validator(mode="after")
    def _webhooks_complete(self) -> Self:
        try:
            self.webhook_keys  # noqa: B018 - read once to check every secret
        except ValueError as problem:
            raise ValueError(f"MN_API_WEBHOOK_SECRET: {problem}") from None
        if not self.webhook_allowed_hosts:
            if self.webhook_urls:
                raise ValueError("MN_API_WEBHOOK_URLS needs MN_API_WEBHOOK_ALLOWED_HOSTS")
            return self
        if not self.webhook_keys:
            raise ValueError(
                "MN_API_WEBHOOK_SECRET (one or more whsec_<base64> secrets) is required once "
                "MN_API_WEBHOOK_ALLOWED_HOSTS allows any host"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("MN_API_WEBHOOK_LEASE_SECONDS must exceed the webhook timeout")
        unknown = sorted(set(self.webhook_events) - SUBSCRIBABLE_EVENTS)
        if unknown:
            raise ValueError(f"MN_API_WEBHOOK_EVENTS names an unknown event: {unknown[0]}")
        policy = self.webhook_policy
        for url in self.webhook_urls:
            try:
                policy.check_url(url)
            except WebhookUrlNotAllowedError as refusal:
                raise ValueError(f"MN_API_WEBHOOK_URLS: {refusal.detail}") from None
        return self

    @property
    def webhook_allowed_hosts(self) -> tuple[str, ...]:
        return _split(self.webhook_allowed_hosts_raw)

    @property
    def webhook_insecure_hosts(self) -> tuple[str, ...]:
        return _split(self.webhook_insecure_hosts_raw)

    @property
    def webhook_keys(self) -> tuple[bytes, ...]:
        """The signing keys, the newest first (checked when the settings are read)."""
        if self.webhook_secret is None:
            return ()
        return parse_secrets(self.webhook_secret.get_secret_value())

    @property
    def webhook_policy(self) -> UrlPolicy:
        return UrlPolicy.of(self.webhook_allowed_hosts, self.webhook_insecure_hosts)

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return _split(self.webhook_urls_raw)

    @property
    def webhook_events(self) -> tuple[str, ...]:
        return _split(self.webhook_events_raw)
