"""The PostgreSQL store (several nodes): a psycopg 3 connection pool, retried transactions.

A server restart breaks every pooled connection: the pool checks a connection before handing
it out, and a transaction that failed on a broken connection runs again on a new one, a
bounded number of times, so every node carries on by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from service.errors import DatabaseUnavailable
from service.store import SCHEMA_VERSION, SchemaError
from service.store_rows import Row
from service.store_sql import SqlStore, Tx

T = TypeVar("T")
log = logging.getLogger("stembot.store")

MIGRATE_LOCK = 7_310_000
# Waits between tries of a transaction that met a broken connection: ~25 s in all, longer
# than a PostgreSQL restart or fail-over takes.
RETRY_WAITS = (0.1, 0.3, 0.6, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS repos (
    content_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    callback TEXT NOT NULL,
    state INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    started_at BIGINT NOT NULL DEFAULT 0,
    completed_at BIGINT NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT NOT NULL DEFAULT '',
    deleted_at BIGINT NOT NULL DEFAULT 0,
    expired_at BIGINT NOT NULL DEFAULT 0,
    purging INTEGER NOT NULL DEFAULT 0,
    lease_node TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    progress INTEGER NOT NULL DEFAULT 0,
    publishing INTEGER NOT NULL DEFAULT 0,
    callback_due BIGINT NOT NULL DEFAULT 0,
    callback_lease BIGINT NOT NULL DEFAULT 0,
    tenant TEXT NOT NULL DEFAULT ''
);
-- schema 4: a database made by schema 3 gets the tenant column in place
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs (owner, tenant, state);
-- fair share counts each key's and tenant's claims of the last hour
CREATE INDEX IF NOT EXISTS jobs_by_owner_start ON jobs (owner, started_at);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_start ON jobs (owner, tenant, started_at);
CREATE TABLE IF NOT EXISTS gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
CREATE INDEX IF NOT EXISTS gone_by_job ON gone (job_id);
CREATE INDEX IF NOT EXISTS jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner_state ON jobs (owner, state);
CREATE INDEX IF NOT EXISTS jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX IF NOT EXISTS jobs_purging ON jobs (purging);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS jobs_publishing ON jobs (publishing);
CREATE INDEX IF NOT EXISTS jobs_callbacks ON jobs (callback_state, callback_due);
CREATE TABLE IF NOT EXISTS mixes (
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    gains TEXT NOT NULL,
    format TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, content_id, path)
);
CREATE INDEX IF NOT EXISTS mixes_by_digest ON mixes (job_id, digest);
-- one-click sign-in links (`stembot up` on a fresh data folder): the token's SHA-256 only
CREATE TABLE IF NOT EXISTS sign_ins (
    digest TEXT PRIMARY KEY,
    secret_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL DEFAULT 0
);
"""


def _pg(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (no statement of the store holds a literal % or ?)."""
    return sql.replace("?", "%s")


class _PgTx:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def one(self, sql: str, *args: Any) -> Row | None:
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_pg(sql), args)
            return await cur.fetchone()

    async def all(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_pg(sql), args)
            return list(await cur.fetchall())

    async def run(self, sql: str, *args: Any) -> int:
        async with self._conn.cursor() as cur:
            await cur.execute(_pg(sql), args)
            return cur.rowcount


class PgStore(SqlStore):
    """A pool of connections; each store call is one transaction, retried on a lost server."""

    shared = True

    def __init__(self, pool: AsyncConnectionPool[Any], result_ttl: int = 0) -> None:
        super().__init__(result_ttl)
        self._pool = pool

    @classmethod
    async def open(cls, url: str, result_ttl: int = 0, max_size: int = 10) -> PgStore:
        try:  # one plain connection first: its error says why (the pool's only "timeout")
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
            await probe.close()
        except psycopg.Error as error:
            reason = _without_password(
                str(error).strip().splitlines()[0] if str(error) else type(error).__name__, url)
            raise ConnectionError(
                f"cannot use the PostgreSQL database of STEMBOT_DATABASE_URL: {reason}"
            ) from None
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            # A short wait for a connection: each retry of a transaction is one such wait, so
            # an outage answers 503 in under a minute; keepalives notice a cut link in ~20 s.
            url, min_size=1, max_size=max_size, open=False, timeout=2,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": 5, "keepalives_idle": 10,
                    "keepalives_interval": 5, "keepalives_count": 2})
        await pool.open(wait=True, timeout=30)
        store = cls(pool, result_ttl)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self._pool.close()

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool,
                           lock: int | None) -> T:
        for wait in (*RETRY_WAITS, None):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    if lock is not None:
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                    return await work(_PgTx(conn))
            except psycopg.OperationalError as error:  # server gone, connection broken
                if wait is None:  # a clear 503 for the API's callers; sweeps try again
                    raise DatabaseUnavailable(
                        "the job database could not be reached; try again shortly") from error
                log.warning("database: %s; trying again in %.1f s",
                            str(error).strip().splitlines()[0] if str(error) else
                            type(error).__name__, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _migrate(self) -> None:
        """Schema 4 from an empty or a schema 3 database; nodes starting together take turns
        (a lock)."""
        async def work(tx: Tx) -> None:
            await tx.run("SELECT pg_advisory_xact_lock(?)", MIGRATE_LOCK)
            await tx.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY,"
                         " value TEXT NOT NULL)")
            row = await tx.one("SELECT value FROM meta WHERE key='schema'")
            if row is not None and int(row["value"]) > SCHEMA_VERSION:
                raise SchemaError(f"database schema {row['value']} is newer than this"
                                  f" stembot ({SCHEMA_VERSION})")
            for statement in filter(str.strip, SCHEMA.split(";")):
                await tx.run(statement)
            await tx.run("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE"
                         " SET value=excluded.value", str(SCHEMA_VERSION))
        await self._tx(work)


def _without_password(text: str, url: str) -> str:
    """libpq quotes the parts of a URL it cannot parse, the password among them."""
    password = urlsplit(url).password
    for secret in filter(None, {password, password and unquote(password)}):
        text = text.replace(secret, "***")
    return text
