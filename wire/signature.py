"""The callback's signature: the service signs each callback body with the key's secret."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Stembot-Signature"


def callback_signature(secret_key: str, body: bytes) -> str:
    """The value of X-Stembot-Signature: `sha256=` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()
