"""What an attempt leads to, and how long to wait before the next one."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from mn_api.domain.webhooks.records import Attempt


class Outcome(StrEnum):
    """What one attempt leads to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"  # the receiver answered 410: it wants no more
    EXHAUSTED = "exhausted"  # the last allowed attempt failed
    REFUSED = "refused"  # the URL or its address is no longer allowed


def decide(attempt: Attempt, number: int, max_attempts: int, *, refused: bool = False) -> Outcome:
    """The outcome of attempt `number` (1-based) of at most `max_attempts`."""
    if attempt.succeeded:
        return Outcome.DELIVERED
    if refused:
        return Outcome.REFUSED
    if attempt.status_code == 410:
        return Outcome.GONE
    if number >= max_attempts:
        return Outcome.EXHAUSTED
    return Outcome.RETRY


def retry_delay(number: int, base_seconds: float, jitter: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt `number`: base x 4^(n-1), each stretched or
    shrunk by up to 20% (`jitter()` gives a number in [0, 1)). With the default 15 s base,
    eight attempts span about a day: 15 s, 1 min, 4 min, 16 min, 1 h, 4.3 h, 17 h."""
    return base_seconds * 4 ** (number - 1) * (0.8 + 0.4 * jitter())
