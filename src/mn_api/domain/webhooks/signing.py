"""Standard Webhooks signing: the secrets operators configure and the signature they make."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

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
