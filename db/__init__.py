"""The ground floor both the job store and the bot's records stand on: database URLs, one
Connection for SQLite and PostgreSQL, and one migration runner. It knows no schema."""

from __future__ import annotations

from pathlib import Path

from db.connection import Connection, Params, Row, Statements, Unavailable
from db.migrate import MetaLedger, Schema, SchemaError, UserVersionLedger
from db.url import Dialect, database_dialect, is_url

__all__ = [
    "Connection",
    "Dialect",
    "MetaLedger",
    "Params",
    "Row",
    "Schema",
    "SchemaError",
    "Statements",
    "Unavailable",
    "UserVersionLedger",
    "connect",
    "database_dialect",
    "open_migrated",
]


async def connect(target: Path | str, *, pool_size: int = 10,
                  name: str = "stembot") -> Connection:
    """The one place that picks the backend: a postgresql:// URL is PostgreSQL (a pool of
    `pool_size`), a path the SQLite file; ValueError for any other URL."""
    if is_url(target) and database_dialect(str(target)) is Dialect.POSTGRESQL:
        from db.postgres import PostgresConnection  # the driver only when used

        return await PostgresConnection.open(str(target), max_size=pool_size, name=name)
    from db.sqlite import SqliteConnection

    return await SqliteConnection.open(target)


async def open_migrated(target: Path | str, schema: Schema, *, pool_size: int = 10,
                        name: str = "stembot") -> Connection:
    """`connect`, then bring the database to `schema`'s latest version (closed on failure)."""
    conn = await connect(target, pool_size=pool_size, name=name)
    try:
        await schema.migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn
