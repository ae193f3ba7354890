"""Webhooks: who is told about a job's events, where, how it is signed and when to retry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from mn_api.domain import events as ev
from mn_api.domain.errors import WebhookUrlNotAllowedError

# What a subscription may name: the job's own events, as the runtime writes them.
SUBSCRIBABLE_EVENTS = frozenset(
    {
        ev.JOB_PENDING,
        ev.JOB_VALIDATED,
        ev.JOB_SCHEDULED,
        ev.JOB_RUNNING,
        ev.JOB_PAUSED,
        ev.JOB_RESUMED,
        ev.JOB_COMPLETED,
        ev.JOB_FAILED,
        ev.JOB_CANCELLED,
        ev.AGENT_MESSAGE_RECEIVED,
        ev.DEAD_LETTER,
        ev.DEAD_LETTER_REPLAYED,
        "agent_recovery_started",
        "agent_recovered",
        "sandbox_job_completed",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = (ev.JOB_COMPLETED, ev.JOB_FAILED, ev.JOB_CANCELLED)

# The job's status once an event of this type happened.
_STATUS_AFTER = {
    ev.JOB_PENDING: "pending",
    ev.JOB_VALIDATED: "pending",
    ev.JOB_SCHEDULED: "queued",
    ev.JOB_RUNNING: "running",
    ev.JOB_PAUSED: "paused",
    ev.JOB_RESUMED: "running",
    **ev.TERMINAL_EVENT_STATUS,
}

# Cloud metadata services: never a webhook target, whatever the configuration says.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_URL_LENGTH = 2048


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # a 2xx answer came back
    FAILED = "failed"  # no more attempts: exhausted, 410 Gone, or refused


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL that passed the policy, rebuilt from its parts so every reader parses it alike."""

    url: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    job_id: str
    url: str
    events: tuple[str, ...]
    source: str  # "job" (asked for at submission) or "global" (MN_API_WEBHOOK_URLS)
    created_at: float

    def wants(self, event_type: str) -> bool:
        return event_type in self.events

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "url": self.url,
            "events": list(self.events),
            "source": self.source,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(
            id=data["id"],
            job_id=data["job_id"],
            url=data["url"],
            events=tuple(data["events"]),
            source=data["source"],
            created_at=data["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try: when, how long, and what came back (a status code or an error)."""

    at: float
    seconds: float
    status_code: int | None = None
    error: str | None = None
    manual: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def receiver_of(url: str) -> str:
    """Who answers a URL: its scheme, host and port, the unit webhook concurrency is
    counted in (a receiver's paths share its server)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").rstrip(".")
    return f"{parts.scheme.lower()}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event told to one subscription; retried until delivered or given up."""

    id: str
    job_id: str
    subscription_id: str
    url: str
    event_type: str
    event_index: int
    body: str
    created_at: float
    state: DeliveryState = DeliveryState.PENDING
    next_attempt_at: float | None = None
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def receiver(self) -> str:
        return receiver_of(self.url)

    def postponed(self, until: float) -> Delivery:
        """Unchanged, but not due before `until` (its receiver is busy)."""
        return replace(self, next_attempt_at=until)

    def with_attempt(
        self, attempt: Attempt, state: DeliveryState, next_at: float | None
    ) -> Delivery:
        return replace(
            self, attempts=(*self.attempts, attempt), state=state, next_attempt_at=next_at
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "subscription_id": self.subscription_id,
            "url": self.url,
            "event_type": self.event_type,
            "event_index": self.event_index,
            "body": self.body,
            "created_at": self.created_at,
            "state": self.state.value,
            "next_attempt_at": self.next_attempt_at,
            "attempts": [
                {
                    "at": a.at,
                    "seconds": a.seconds,
                    "status_code": a.status_code,
                    "error": a.error,
                    "manual": a.manual,
                }
                for a in self.attempts
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(
            id=data["id"],
            job_id=data["job_id"],
            subscription_id=data["subscription_id"],
            url=data["url"],
            event_type=data["event_type"],
            event_index=data["event_index"],
            body=data["body"],
            created_at=data["created_at"],
            state=DeliveryState(data["state"]),
            next_attempt_at=data["next_attempt_at"],
            attempts=tuple(Attempt(**a) for a in data["attempts"]),
        )


@dataclass(frozen=True, slots=True)
class Watch:
    """A job whose events are followed for its subscriptions, from `cursor` on."""

    job_id: str
    cursor: int = -1
    status: str | None = None


def status_after(event_type: str, current: str | None) -> str | None:
    return _STATUS_AFTER.get(event_type, current)


def delivery_id(subscription_id: str, event_index: int) -> str:
    """The same subscription and event always give the same id, so finding an event twice
    (after a restart, or on two replicas) never makes a second delivery."""
    digest = hashlib.sha256(f"{subscription_id}:{event_index}".encode()).hexdigest()
    return f"whd_{digest[:24]}"


def delivery_body(
    delivery: str, job_id: str, status: str | None, event_type: str, event_raw: bytes, at: str
) -> str:
    """The JSON body receivers get; the event goes in exactly as the runtime wrote it."""
    head = json.dumps(
        {
            "id": delivery,
            "type": event_type,
            "job_id": job_id,
            "status": status,
            "occurred_at": at,
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"event":{event_raw.decode()}}}'


SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for keys of 24 to 64 bytes.
SECRET_BYTES = range(24, 65)


def parse_secrets(text: str) -> tuple[bytes, ...]:
    """The signing keys of `MN_API_WEBHOOK_SECRET`: `whsec_<base64>` secrets separated by
    spaces or commas, the one that signs first. Raises ValueError naming what is wrong
    (never the secret itself)."""
    keys = []
    for number, secret in enumerate(re.split(r"[\s,]+", text.strip()), start=1):
        if not secret:
            continue
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"secret {number} does not start with {SECRET_PREFIX}")
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"secret {number} is not base64 after {SECRET_PREFIX}") from None
        if len(key) not in SECRET_BYTES:
            raise ValueError(f"secret {number} holds {len(key)} bytes; 24 to 64 are needed")
        keys.append(key)
    return tuple(keys)


def signature(keys: Sequence[bytes], message_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
    `<id>.<timestamp>.<body>` under each key, space-separated (one per key while a
    rotation overlaps, so that receivers knowing either secret accept)."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys
    )


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


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which URLs and addresses webhooks may reach.

    `allowed_hosts` holds exact host names (or IP literals) and `*.domain` patterns; a URL's
    host must match one. Only https is called, except for hosts in `insecure_hosts`. A host
    must resolve to public addresses only, unless it is listed exactly (not by a pattern),
    which lets an operator name an internal receiver on purpose. Cloud metadata addresses,
    unspecified and multicast addresses are never called.
    """

    allowed_hosts: frozenset[str]
    insecure_hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allowed: Iterable[str], insecure: Iterable[str] = ()) -> UrlPolicy:
        return cls(
            frozenset(h.strip().lower().rstrip(".") for h in allowed if h.strip()),
            frozenset(h.strip().lower().rstrip(".") for h in insecure if h.strip()),
        )

    def check_url(self, url: str) -> WebhookTarget:
        """The normalised target, or WebhookUrlNotAllowedError saying what is wrong."""
        if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.isprintable():
            raise _refused("the URL must be printable ASCII of at most 2048 characters")
        if "\\" in url or any(c.isspace() for c in url):
            raise _refused("the URL holds a backslash or a space")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise _refused("the URL cannot be parsed") from err
        scheme = parts.scheme.lower()
        if "@" in parts.netloc:
            raise _refused("the URL must not carry a user name or password")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise _refused("the URL names no host")
        literal = _ip_literal(host)
        if literal is None and not _is_host_name(host):
            raise _refused(f"{host!r} is neither a host name nor a plain IP address")
        if literal is not None:
            host = str(literal)
        if not self.allows_host(host):
            raise _refused(f"host {host!r} is not in MN_API_WEBHOOK_ALLOWED_HOSTS")
        if scheme != "https" and not (scheme == "http" and host in self.insecure_hosts):
            raise _refused("only https URLs are called (http only for insecure hosts)")
        if port == 0:
            raise _refused("port 0 is no port a receiver listens on")
        port = port or (443 if scheme == "https" else 80)
        shown = f"[{host}]" if literal is not None and literal.version == 6 else host
        default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
        netloc = shown if default else f"{shown}:{port}"
        target = f"{scheme}://{netloc}{parts.path or '/'}"
        if parts.query:
            target += f"?{parts.query}"
        if literal is not None:
            self.check_addresses(host, [str(literal)])
        return WebhookTarget(target, host, port)

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.allowed_hosts:
            return True
        if _ip_literal(host) is not None:
            return False
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
            for pattern in self.allowed_hosts
        )

    def check_addresses(self, host: str, addresses: Sequence[str]) -> None:
        """Refuse when any address `host` resolved to may not be called."""
        if not addresses:
            raise _refused(f"host {host!r} does not resolve")
        explicit = host.lower().rstrip(".") in self.allowed_hosts
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            forbidden = forbidden_reason(address, explicit=explicit)
            if forbidden:
                raise _refused(f"host {host!r} resolves to {forbidden} address {address}")


def forbidden_reason(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, explicit: bool
) -> str | None:
    """Why `address` may not be called, or None when it may."""
    candidates = [address, *_embedded_ipv4(address)]
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata"
        if candidate.is_unspecified or candidate.is_multicast:
            return "an unusable"
        if not explicit and not candidate.is_global:
            if candidate.is_loopback:
                return "a loopback"
            if candidate.is_link_local:
                return "a link-local"
            return "a private"
    return None


def _embedded_ipv4(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.version == 4:
        return []
    assert isinstance(address, ipaddress.IPv6Address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_host_name(host: str) -> bool:
    """A DNS name: letter-digit-hyphen labels, and a last label that is not all digits,
    so that `2130706433`, `0x7f.1` or `0177.0.0.1` (other spellings of 127.0.0.1 that
    resolvers accept) are refused rather than resolved."""
    labels = host.lower().split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return False
    last = labels[-1]
    return not (last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last))


def _refused(detail: str) -> WebhookUrlNotAllowedError:
    return WebhookUrlNotAllowedError(detail)
