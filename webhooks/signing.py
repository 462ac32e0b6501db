"""The Standard Webhooks signature: `v1,base64(HMAC-SHA256(secret, id.timestamp.body))`.

Signing is the `standardwebhooks` package's own `Webhook.sign`, so what a receiver verifies with
that library (or any other implementation of the spec) is exactly what we send. During a secret
rotation both secrets sign and both signatures go in the one header, space-separated, as the spec
allows: a receiver still holding the old secret keeps verifying.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from functools import lru_cache
from typing import Iterable

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret in the spec's format: whsec_ + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def signature_header(secrets_: Iterable[str], msg_id: str, at: datetime, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,` signature per secret, space-separated."""
    text = body.decode("utf-8")  # str: what every version of the package signs as the body's UTF-8
    return " ".join(_signer(s).sign(msg_id, at, text) for s in secrets_)


def headers(secrets_: Iterable[str], msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(secrets_, msg_id, at, body),
        "content-type": "application/json",
    }
