"""Which URLs and addresses a webhook may reach: the gateway's guard against being made
to call inside the network (SSRF)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mn_api.domain.errors import WebhookUrlNotAllowedError

# Cloud metadata services: never a webhook target, whatever the configuration says.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL that passed the policy, rebuilt from its parts so every reader parses it alike."""

    url: str
    host: str
    port: int


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
