"""Credentials: secretId/secretKey checks, HTTP Basic, signed content links.

The callbacks' HMAC is the protocol's: `wire.signature`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from service.errors import AuthFailed
from service.store import Key, Store


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


# --- signed links -----------------------------------------------------------------------


MIN_LINK_SECRET = 32  # bytes; a shorter (or empty) key would make links forgeable


def link_secret(data_dir: Path, configured: str = "") -> bytes:
    """The server's link-signing secret: the setting, else a file made once in the data folder.

    The file appears whole or not at all: the secret is written to a temporary file beside
    it, then linked into place, so a crash or a concurrent start never sees it empty. A file
    that is too short (left by an older version's crash) is replaced, never used as a key.
    """
    if configured:
        return configured.encode()
    path = data_dir / "link-secret"
    secret = _read_secret(path)
    if secret is not None and len(secret) >= MIN_LINK_SECRET:
        return secret
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".link-secret.", dir=data_dir)  # mode 0600
    try:
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if secret is None:
            try:
                os.link(temp, path)  # create-if-absent: the first start wins
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not path.exists():
                    os.replace(temp, path)
        else:
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    secret = _read_secret(path)
    if secret is None or len(secret) < MIN_LINK_SECRET:
        raise RuntimeError(f"{path} holds fewer than {MIN_LINK_SECRET} bytes: delete it")
    return secret


def _read_secret(path: Path) -> bytes | None:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        return None


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


_EXPIRES = re.compile(r"[0-9]{1,12}")  # unix seconds; 12 digits reach the year 33658
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def check_link(secret: bytes, content_id: str, path: str, expires: str, signature: str) -> None:
    """Refuse a malformed, expired or forged link, each with its own message."""
    # fullmatch on ASCII classes: str.isdigit accepts '²', and int() refuses 5000 digits
    if not _EXPIRES.fullmatch(expires):
        raise AuthFailed("the link's expires must be a unix time in seconds")
    if not _SIGNATURE.fullmatch(signature):
        raise AuthFailed("the link's signature must be 64 lowercase hex digits")
    if int(expires) < time.time():
        raise AuthFailed("the link has expired")
    expected = link_signature(secret, content_id, path, int(expires))
    if not hmac.compare_digest(expected, signature):
        raise AuthFailed("the link's signature is wrong")


# A player link signs the job id under a name no repository can have ('@' is not allowed in a
# contentId), so a player signature never opens a file and a file's signature no player.
PLAYER = "@player"


def sign_player(secret: bytes, base_url: str, job_id: str, ttl: int) -> tuple[str, int]:
    """A URL of the job's player page, without credentials until `expires` (unix seconds)."""
    expires = int(time.time()) + ttl
    signature = link_signature(secret, PLAYER, job_id, expires)
    return f"{base_url}/player/{quote(job_id)}?expires={expires}&signature={signature}", expires


def check_player(secret: bytes, job_id: str, expires: str, signature: str) -> None:
    check_link(secret, PLAYER, job_id, expires, signature)
