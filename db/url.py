"""Database URLs: which backend one names, and messages about it that never show its password.

Both the job service (STEMBOT_DATABASE_URL) and the bot (BOT_DATABASE_URL) read their URL here.
"""

from __future__ import annotations

import enum
import re
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


class Dialect(enum.StrEnum):
    """A backend; the value names its migrations folder."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def database_dialect(url: str) -> Dialect:
    """The backend a database URL names: empty is SQLite; ValueError for anything else."""
    url = url.strip()
    if not url:
        return Dialect.SQLITE
    # Only the scheme goes into messages: the rest may hold a password.
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in POSTGRES_SCHEMES:
        named = f"a {scheme}:// URL" if scheme else "a value without postgresql://"
        raise ValueError("must be empty (SQLite in the data folder) or a"
                         f" postgresql://USER:PASSWORD@HOST:PORT/DATABASE URL, not {named}")
    from psycopg import conninfo  # only PostgreSQL users need the driver loaded

    try:
        conninfo.conninfo_to_dict(url)
    except Exception as error:  # psycopg's ProgrammingError
        # libpq quotes the token it choked on, which may be the password: never shown.
        reason = re.sub(r'"[^"]*"', '"…"', first_line(error))
        raise ValueError(f"is not a valid PostgreSQL URL ({reason})") from None
    return Dialect.POSTGRESQL


def is_url(target: object) -> bool:
    """Whether a database target is a URL (else it is the SQLite file's path)."""
    return isinstance(target, str) and "://" in target


def without_password(text: str, url: str) -> str:
    """`text` (a driver's message) with the URL's password, plain or %-encoded, as ***."""
    try:
        password = urlsplit(url).password
    except ValueError:  # a URL too broken to split shows nothing of itself
        return "…"
    for secret in filter(None, {password, password and unquote(password)}):
        text = text.replace(secret, "***")
    return text


def describe(url: str) -> str:
    """host:port/database of a URL, for messages (never the password)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/')}"
