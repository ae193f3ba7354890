"""Deliveries verify with the published `standardwebhooks` library, as receivers check them,
through a rotation of the signing secret too."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from mn_api.application.webhooks import DeliverySender, WebhookConfig
from mn_api.domain.webhooks.records import Delivery, delivery_body
from mn_api.domain.webhooks.signing import parse_secrets
from mn_api.domain.webhooks.url_policy import UrlPolicy
from tests.support import webhook_secret

OLD = webhook_secret("the secret receivers know today")
NEW = webhook_secret("the secret that replaces it")


def delivery() -> Delivery:
    event = b'{"type":"job_completed","timestamp":"2026-12-01T09:00:00.000Z","job_id":"j-1"}'
    return Delivery(
        id="whd_0123456789abcdef01234567",
        job_id="j-1",
        subscription_id="whs_0123456789abcdef",
        url="https://hooks.example.com/in",
        event_type="job_completed",
        event_index=7,
        body=delivery_body(
            "whd_0123456789abcdef01234567",
            "j-1",
            "completed",
            "job_completed",
            event,
            "2026-12-01T09:00:00.000Z",
        ),
        created_at=time.time(),
    )


def signed(secrets: str, at: float | None = None) -> tuple[Delivery, dict[str, str]]:
    cfg = WebhookConfig(policy=UrlPolicy.of(["hooks.example.com"]), secrets=parse_secrets(secrets))
    sender = DeliverySender(
        store=Any,
        notifier=Any,
        telemetry=Any,
        config=cfg,  # type: ignore[arg-type]
    )
    sent = delivery()
    return sent, sender.headers(sent, int(time.time() if at is None else at))


def test_a_delivery_verifies_with_the_library() -> None:
    sent, headers = signed(OLD)
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == sent.id
    assert Webhook(OLD).verify(sent.body, headers)["id"] == sent.id


def test_during_a_rotation_receivers_of_either_secret_accept() -> None:
    sent, headers = signed(f"{NEW} {OLD}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(OLD).verify(sent.body, headers)["job_id"] == "j-1"
    assert Webhook(NEW).verify(sent.body, headers)["job_id"] == "j-1"
    # Commas separate secrets as well, and once the old one is dropped only the new verifies.
    assert signed(f"{NEW},{OLD}")[1]["webhook-signature"] == headers["webhook-signature"]
    sent, headers = signed(NEW)
    Webhook(NEW).verify(sent.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(sent.body, headers)


@pytest.mark.parametrize("tampering", ["body", "timestamp", "old", "secret", "id"])
def test_the_library_refuses_what_was_not_sent_as_signed(tampering: str) -> None:
    sent, headers = signed(OLD, at=time.time() - 600 if tampering == "old" else None)
    body = sent.body
    secret = OLD
    if tampering == "body":
        body = body.replace('"completed"', '"failed"')
    elif tampering == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    elif tampering == "secret":
        secret = NEW
    elif tampering == "id":
        headers["webhook-id"] = "whd_ffffffffffffffffffffffff"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain-old-shared-secret-0123456789", "does not start with whsec_"),
        ("whsec_not*base64", "not base64"),
        ("whsec_c2hvcnQ=", "holds 5 bytes"),
        (f"{OLD} whsec_c2hvcnQ=", "secret 2 holds 5 bytes"),
    ],
)
def test_secrets_that_cannot_sign_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_secrets(text)
    assert text.split()[-1].removeprefix("whsec_") not in str(caught.value)  # never echoed


def test_the_readmes_receiver_accepts_real_deliveries_and_refuses_forged_ones() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "verify" in b)
    namespace: dict[str, Any] = {"secret": OLD}
    exec(snippet, namespace)
    sent, headers = signed(f"{NEW} {OLD}")
    assert namespace["handle"](headers, sent.body.encode()) == 204
    assert namespace["handle"](headers, sent.body.encode() + b" ") == 401
