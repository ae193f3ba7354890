"""The webhook URL policy, signatures, bodies and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import WebhookUrlNotAllowedError
from mn_api.domain.webhooks.records import Attempt, delivery_body, delivery_id
from mn_api.domain.webhooks.retries import Outcome, decide, retry_delay
from mn_api.domain.webhooks.signing import signature
from mn_api.domain.webhooks.url_policy import UrlPolicy

POLICY = UrlPolicy.of(
    ["hooks.example.com", "*.partner.example", "127.0.0.1", "internal.example.com"],
    insecure=["127.0.0.1"],
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("https://evil.example.org/hook", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("http://hooks.example.com/hook", "only https"),
        ("ftp://hooks.example.com/hook", "only https"),
        ("https://hooks.example.com@evil.example.org/", "user name or password"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://evil.example.org\\@hooks.example.com/", "backslash"),
        ("https://hooks.example.com /x", "backslash or a space"),
        ("http://2130706433/", "neither a host name nor a plain IP"),
        ("http://0x7f.1/", "neither a host name nor a plain IP"),
        ("http://0177.0.0.1/", "neither a host name nor a plain IP"),
        ("http://127.1/", "neither a host name nor a plain IP"),
        ("https://[::1]/", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("https://[::ffff:127.0.0.1]/", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("https://partner.example/", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("https://xpartner.example/", "not in MN_API_WEBHOOK_ALLOWED_HOSTS"),
        ("https://hooks.example.com:99999/", "cannot be parsed"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https:///nohost", "names no host"),
        ("https://hööks.example.com/", "printable ASCII"),
        ("https://hooks.example.com/\x00", "printable ASCII"),
        ("https://" + "a" * 2100 + ".example.com/", "printable ASCII"),
    ],
)
def test_hostile_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlNotAllowedError, match=reason):
        POLICY.check_url(url)


def test_nothing_is_allowed_until_hosts_are_listed() -> None:
    with pytest.raises(WebhookUrlNotAllowedError):
        UrlPolicy.of([]).check_url("https://hooks.example.com/")


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://HOOKS.example.com./in?x=1#frag", "https://hooks.example.com/in?x=1"),
        ("https://hooks.example.com:443", "https://hooks.example.com/"),
        ("https://a.b.partner.example:8443/x", "https://a.b.partner.example:8443/x"),
        ("http://127.0.0.1:9000/hooks", "http://127.0.0.1:9000/hooks"),
    ],
)
def test_allowed_urls_are_rebuilt_from_their_parts(url: str, normalised: str) -> None:
    assert POLICY.check_url(url).url == normalised


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.4",
        "100.64.0.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "::127.0.0.1",
        "2002:7f00:1::1",
    ],
)
def test_hosts_matched_by_a_pattern_may_not_resolve_inside(address: str) -> None:
    with pytest.raises(WebhookUrlNotAllowedError, match="resolves to"):
        POLICY.check_addresses("localhost.partner.example", [address])


def test_one_bad_address_among_good_ones_is_enough_to_refuse() -> None:
    with pytest.raises(WebhookUrlNotAllowedError, match="loopback"):
        POLICY.check_addresses("a.partner.example", ["93.184.216.34", "127.0.0.1"])


def test_an_exactly_listed_host_may_be_internal_but_never_metadata() -> None:
    POLICY.check_addresses("internal.example.com", ["10.0.0.8", "::1"])
    for metadata in ("169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"):
        with pytest.raises(WebhookUrlNotAllowedError, match="metadata"):
            POLICY.check_addresses("internal.example.com", [metadata])
    for unusable in ("0.0.0.0", "::", "224.0.0.1"):
        with pytest.raises(WebhookUrlNotAllowedError, match="unusable"):
            POLICY.check_addresses("internal.example.com", [unusable])


def test_public_addresses_and_unresolvable_hosts() -> None:
    POLICY.check_addresses("a.partner.example", ["93.184.216.34", "2606:2800:220:1::1"])
    with pytest.raises(WebhookUrlNotAllowedError, match="does not resolve"):
        POLICY.check_addresses("a.partner.example", [])


def test_ip_literals_are_checked_without_resolving() -> None:
    policy = UrlPolicy.of(["169.254.169.254", "[::1]", "::1"], insecure=["169.254.169.254"])
    with pytest.raises(WebhookUrlNotAllowedError, match="metadata"):
        policy.check_url("http://169.254.169.254/latest/")
    assert policy.check_url("https://[::1]:8443/x").url == "https://[::1]:8443/x"


def test_the_signature_is_the_standard_webhooks_hmac_of_id_timestamp_body() -> None:
    body = '{"id":"whd_1"}'
    key = b"k" * 32
    mac = hmac.new(key, b"whd_1.1764000000." + body.encode(), hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert signature([key], "whd_1", 1764000000, body) == expected
    assert signature([b"o" * 32, key], "whd_1", 1764000000, body).split(" ")[1] == expected
    assert signature([key], "whd_2", 1764000000, body) != expected


def test_the_body_carries_the_event_exactly_as_the_runtime_wrote_it() -> None:
    raw = b'{"timestamp":"2026-01-01T00:00:00.000Z","type":"job_failed","payload":{"n":1.50}}'
    event = JsonDocument(raw, json.loads)
    body = delivery_body("whd_x", "job-1", "failed", "job_failed", event.raw, "2026-01-01Z")
    assert json.loads(body) == {
        "id": "whd_x",
        "type": "job_failed",
        "job_id": "job-1",
        "status": "failed",
        "occurred_at": "2026-01-01Z",
        "event": json.loads(raw),
    }
    assert body.endswith(',"event":' + raw.decode() + "}")


def test_delivery_ids_depend_only_on_subscription_and_event() -> None:
    assert delivery_id("whs_a", 3) == delivery_id("whs_a", 3)
    assert len({delivery_id("whs_a", 3), delivery_id("whs_a", 4), delivery_id("whs_b", 3)}) == 3


def test_decisions() -> None:
    ok, gone, error = Attempt(0, 0, 200), Attempt(0, 0, 410), Attempt(0, 0, error="timeout")
    assert decide(ok, 8, 8) is Outcome.DELIVERED
    assert decide(gone, 1, 8) is Outcome.GONE
    assert decide(Attempt(0, 0, 302), 1, 8) is Outcome.RETRY
    assert decide(Attempt(0, 0, 404), 1, 8) is Outcome.RETRY
    assert decide(error, 7, 8) is Outcome.RETRY
    assert decide(error, 8, 8) is Outcome.EXHAUSTED
    assert decide(error, 1, 8, refused=True) is Outcome.REFUSED


def test_eight_attempts_span_about_a_day_with_jitter() -> None:
    low = sum(retry_delay(n, 15, lambda: 0.0) for n in range(1, 8))
    high = sum(retry_delay(n, 15, lambda: 0.999) for n in range(1, 8))
    assert 16 * 3600 < low < high < 30 * 3600
    assert retry_delay(1, 15, lambda: 0.0) == pytest.approx(12)
    assert retry_delay(2, 15, lambda: 0.5) == pytest.approx(60)
