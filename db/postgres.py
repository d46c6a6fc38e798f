"""PostgreSQL behind the Connection: a psycopg 3 pool that outlives server restarts.

A server restart breaks every pooled connection: the pool checks a connection before handing
it out, and a transaction that failed on a broken connection runs again on a new one, a
bounded number of times, so every client carries on by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from db.connection import Params, Row, Statements, Transactions, Unavailable
from db.url import Dialect, describe, first_line, without_password

T = TypeVar("T")
log = logging.getLogger("stembot.db")

# Waits between tries of a transaction that met a broken connection: ~25 s in all, longer
# than a PostgreSQL restart or fail-over takes.
RETRY_WAITS = (0.1, 0.3, 0.6, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0)


@functools.lru_cache(maxsize=512)
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

    async def script(self, sql: str) -> None:
        # No parameters: psycopg sends the script as is, several statements at once.
        await self._conn.execute(cast(Any, sql))


class PostgresConnection(Transactions):
    """A pool of autocommit connections; each transaction retried on a lost server."""

    dialect = Dialect.POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10,
                   name: str = "stembot") -> PostgresConnection:
        # One plain connection first: a wrong password or host is one clear line here,
        # where the pool would only time out.
        try:
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        except psycopg.Error as error:
            raise ConnectionError(f"cannot connect to PostgreSQL at {describe(url)}:"
                                  f" {without_password(first_line(error), url)}") from None
        await probe.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            # A short wait for a connection: each retry of a transaction is one such wait, so
            # an outage is reported in under a minute; keepalives notice a cut link in ~20 s.
            url, min_size=1, max_size=max_size, open=False, timeout=2, name=name,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": 5, "keepalives_idle": 10,
                    "keepalives_interval": 5, "keepalives_count": 2})
        await pool.open(wait=True, timeout=30)
        return cls(pool)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True, lock: int | None = None
                          ) -> AsyncIterator[Statements]:
        async with self._pool.connection() as conn, conn.transaction():
            if lock is not None:  # held until the transaction ends, across every node
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield _Statements(conn)

    async def _run(self, work: Callable[[Statements], Awaitable[T]], *, write: bool,
                   lock: int | None) -> T:
        for wait in (*RETRY_WAITS, None):
            try:
                async with self.transaction(write=write, lock=lock) as tx:
                    return await work(tx)
            except psycopg.OperationalError as error:  # server gone, connection broken
                if wait is None:
                    raise Unavailable("the database could not be reached") from error
                log.warning("database: %s; trying again in %.1f s", first_line(error), wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._pool.close()
