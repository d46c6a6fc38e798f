"""PostgreSQL behind the storage Connection: a psycopg pool that outlives server restarts."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.connection import Dialect, Params, Row, Statements, first_line

# The bot's schema version; a table of its own, since PostgreSQL has no user_version.
VERSION_TABLE = "bot_schema_version"
# Serialises migrations of bots starting at once against one database ("stmb").
_MIGRATION_LOCK = 0x73746D62


@functools.lru_cache(maxsize=256)
def to_pyformat(sql: str) -> str:
    """The common SQL's `?` placeholders in psycopg's style; a literal `%` doubles."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Statements:
    """Statements on one pooled connection (autocommit unless inside its transaction)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        # Params are never None: psycopg then reads the placeholders (and the doubled %).
        async with self._conn.cursor() as cursor:
            await cursor.execute(to_pyformat(sql), tuple(params))
            return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(to_pyformat(sql), [tuple(row) for row in rows])

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(to_pyformat(sql), tuple(params))
            return await cursor.fetchone()

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(to_pyformat(sql), tuple(params))
            return cast(list[Row], await cursor.fetchall())


def describe(url: str) -> str:
    """host:port/database of a URL, for messages (never the password)."""
    parts = conninfo.conninfo_to_dict(url)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


class PostgresConnection:
    """A pool of autocommit connections; each checked before use, so a restarted server
    costs the next caller a reconnect, not an error."""

    dialect = Dialect.POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = 4,
                   wait_s: float = 30) -> PostgresConnection:
        """Connect; `wait_s`: how long a caller waits for a pooled connection."""
        # One plain connection first: a wrong password or host is one clear line here,
        # where the pool would only time out.
        try:
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        except psycopg.OperationalError as error:
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {describe(url)}: {first_line(error)}") from None
        await probe.close()
        pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, timeout=wait_s,
            kwargs={"autocommit": True}, check=AsyncConnectionPool.check_connection,
            name="stembot-bot")
        await pool.open(wait=True, timeout=wait_s)
        return cls(pool)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._pool.connection() as conn:
            return await _Statements(conn).execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as tx:
            await tx.execute_many(sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._pool.connection() as conn:
            return await _Statements(conn).fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._pool.connection() as conn:
            return await _Statements(conn).fetch_all(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        async with self._pool.connection() as conn, conn.transaction():
            yield _Statements(conn)

    async def version(self) -> int:
        async with self._pool.connection() as conn:
            return await _version(_Statements(conn))

    async def apply(self, version: int, script: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            tx = _Statements(conn)
            await tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            current = await _version(tx)
            if current >= version:
                return False
            if current == 0 and await _exists(tx, "jobs"):
                raise RuntimeError(
                    "this PostgreSQL database already has a jobs table that is not the bot's"
                    " (the job service's?): give the bot a database of its own")
            # No parameters: psycopg sends the script as is, several statements at once.
            await conn.execute(script)  # our own files, never input
            await tx.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE}"
                             " (version INTEGER NOT NULL)")
            await tx.execute(f"DELETE FROM {VERSION_TABLE}")
            await tx.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (version,))
            return True

    async def close(self) -> None:
        await self._pool.close()


async def _exists(tx: _Statements, table: str) -> bool:
    row = await tx.fetch_one("SELECT to_regclass(?) IS NOT NULL AS found", (table,))
    return bool(row and row["found"])


async def _version(tx: _Statements) -> int:
    if not await _exists(tx, VERSION_TABLE):
        return 0
    row = await tx.fetch_one(f"SELECT version FROM {VERSION_TABLE}")
    return int(row["version"]) if row else 0
