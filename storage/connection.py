"""The one interface job and limit queries run on, whichever database holds the records.

SQL is written once, in the common dialect of SQLite and PostgreSQL, with `?` placeholders
(never a `?` inside a literal); each implementation translates what it must.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import urlsplit

Row = Mapping[str, Any]
Params = Sequence[Any]


class Dialect(enum.StrEnum):
    """A backend; the value names its migrations folder."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Statements(Protocol):
    """Running statements; outside a transaction each one commits by itself."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...


class Connection(Statements, Protocol):
    """An open database: statements, transactions and the schema version."""

    @property
    def dialect(self) -> Dialect: ...

    def transaction(self) -> AbstractAsyncContextManager[Statements]:
        """Statements run on the yielded object commit together, or not at all."""
        ...

    async def version(self) -> int:
        """The schema version: the number of the last migration applied (0 when empty)."""
        ...

    async def apply(self, version: int, script: str) -> bool:
        """Run a migration script and record its version atomically, unless the database is
        already at or past it; whether it ran."""
        ...

    async def close(self) -> None: ...


_POSTGRES_SCHEMES = ("postgresql", "postgres")


def database_dialect(url: str) -> Dialect:
    """The backend a database URL names: empty is SQLite; ValueError for anything else."""
    url = url.strip()
    if not url:
        return Dialect.SQLITE
    # Only the scheme goes into messages: the rest may hold a password.
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in _POSTGRES_SCHEMES:
        named = f"a {scheme}:// URL" if scheme else "a value without postgresql://"
        raise ValueError("must be empty (the SQLite file in the data folder) or a"
                         f" postgresql://user:password@host:port/database URL, not {named}")
    from psycopg import conninfo  # only PostgreSQL users need the driver loaded

    try:
        conninfo.conninfo_to_dict(url)
    except Exception as error:  # psycopg's ProgrammingError
        # libpq quotes the token it choked on, which may be the password: never shown.
        reason = re.sub(r'"[^"]*"', '"…"', first_line(error))
        raise ValueError(f"is not a valid PostgreSQL URL ({reason})") from None
    return Dialect.POSTGRESQL


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
