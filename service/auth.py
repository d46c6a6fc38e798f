"""Credentials: secretId/secretKey checks, HTTP Basic, signed content links, callback HMACs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from service.errors import AuthFailed
from service.store import Key, Store

SIGNATURE_HEADER = "X-Stembot-Signature"


async def authenticate(store: Store, secret_id: object, secret_key: object) -> Key:
    """The active key matching both values; the same error for every kind of mismatch."""
    if not isinstance(secret_id, str) or not isinstance(secret_key, str) or not secret_id:
        raise AuthFailed("secretId and secretKey are required")
    key = await store.key(secret_id)
    # Compare even when the id is unknown, so timing does not tell ids apart.
    expected = key.secret_key if key else secrets.token_urlsafe(32)
    if not hmac.compare_digest(expected.encode(), secret_key.encode()) or key is None:
        raise AuthFailed("unknown secretId or wrong secretKey")
    return key


def basic_credentials(header: str | None) -> tuple[str, str]:
    """(secretId, secretKey) from an `Authorization: Basic` header."""
    if not header or not header.lower().startswith("basic "):
        raise AuthFailed("HTTP Basic credentials (secretId:secretKey) or a signed link required")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthFailed("malformed Basic credentials") from None
    secret_id, sep, secret_key = decoded.partition(":")
    if not sep:
        raise AuthFailed("malformed Basic credentials")
    return secret_id, secret_key


def callback_signature(secret_key: str, body: bytes) -> str:
    """The value of X-Stembot-Signature: `sha256=` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()


# --- signed links -----------------------------------------------------------------------


def link_secret(data_dir: Path, configured: str = "") -> bytes:
    """The server's link-signing secret: the setting, else a file made once in the data folder."""
    if configured:
        return configured.encode()
    path = data_dir / "link-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def link_signature(secret: bytes, content_id: str, path: str, expires: int) -> str:
    message = f"{content_id}\n{path}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_link(
    secret: bytes, base_url: str, content_id: str, path: str, ttl: int
) -> tuple[str, int]:
    """A URL to GET the file without credentials until `expires` (unix seconds)."""
    expires = int(time.time()) + ttl
    signature = link_signature(secret, content_id, path, expires)
    url = (f"{base_url}/content/{quote(content_id)}/{quote(path)}"
           f"?expires={expires}&signature={signature}")
    return url, expires


def check_link(secret: bytes, content_id: str, path: str, expires: str, signature: str) -> None:
    if not expires.isdigit() or int(expires) < time.time():
        raise AuthFailed("the link has expired")
    expected = link_signature(secret, content_id, path, int(expires))
    if not hmac.compare_digest(expected, signature):
        raise AuthFailed("the link's signature is wrong")
