"""WebhookConfig: the settings webhooks run with, free of where they were read from."""

from __future__ import annotations

from dataclasses import dataclass

from mn_api.domain.webhooks.records import DEFAULT_EVENTS
from mn_api.domain.webhooks.url_policy import UrlPolicy


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    policy: UrlPolicy
    # Signing keys, the newest first; each signs every delivery while a rotation overlaps.
    secrets: tuple[bytes, ...] = ()
    global_urls: tuple[str, ...] = ()
    global_events: tuple[str, ...] = DEFAULT_EVENTS
    max_attempts: int = 8
    retry_base_seconds: float = 15.0
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    retention_seconds: float = 7 * 86400.0
    # Deliveries one process holds at once, those of them in flight to one receiver
    # (scheme, host and port), and those waiting their turn behind them: receivers that
    # answer slowly hold only their own share, never a healthy one's turn.
    concurrency: int = 128
    receiver_concurrency: int = 4
    receiver_queue: int = 64

    @property
    def enabled(self) -> bool:
        """Webhooks run once some host is allowed (configuration then requires a secret)."""
        return bool(self.policy.allowed_hosts)
