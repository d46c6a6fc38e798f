"""The SQLite store (one box): one aiosqlite connection, explicit transactions, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from service.store import SCHEMA_VERSION, SchemaError
from service.store_rows import Row
from service.store_sql import SqlStore, Tx

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS repos (
    content_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    callback TEXT NOT NULL,
    state INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    started_at INTEGER NOT NULL DEFAULT 0,
    completed_at INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
CREATE INDEX IF NOT EXISTS jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner_state ON jobs (owner, state);
-- a mix is a result derived from a job: it goes when its job goes
CREATE TABLE IF NOT EXISTS mixes (
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    gains TEXT NOT NULL,
    format TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, content_id, path)
);
CREATE INDEX IF NOT EXISTS mixes_by_digest ON mixes (job_id, digest);
-- one-click sign-in links (`stembot up` on a fresh data folder): the token's SHA-256 only
CREATE TABLE IF NOT EXISTS sign_ins (
    digest TEXT PRIMARY KEY,
    secret_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER NOT NULL DEFAULT 0
);
"""

# Columns later schemas added to `jobs`, added in place to an older file (2: retention, 3:
# leases, progress in the row, staged publishing, the callback outbox's due time and lease;
# 4: the tenant);
# then the indexes that use them. Each step checks first, so running it twice changes nothing.
ADDED_COLUMNS = (
    ("deleted_at", "INTEGER NOT NULL DEFAULT 0"),
    ("expired_at", "INTEGER NOT NULL DEFAULT 0"),
    ("purging", "INTEGER NOT NULL DEFAULT 0"),
    ("lease_node", "TEXT NOT NULL DEFAULT ''"),
    ("lease_until", "INTEGER NOT NULL DEFAULT 0"),
    ("progress", "INTEGER NOT NULL DEFAULT 0"),
    ("publishing", "INTEGER NOT NULL DEFAULT 0"),
    ("callback_due", "INTEGER NOT NULL DEFAULT 0"),
    ("callback_lease", "INTEGER NOT NULL DEFAULT 0"),
    ("tenant", "TEXT NOT NULL DEFAULT ''"),  # 4: fair share between a key's tenants
)
ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX IF NOT EXISTS jobs_purging ON jobs (purging);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS jobs_publishing ON jobs (publishing);
CREATE INDEX IF NOT EXISTS jobs_callbacks ON jobs (callback_state, callback_due);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs (owner, tenant, state);
-- fair share counts each key's and tenant's claims of the last hour
CREATE INDEX IF NOT EXISTS jobs_by_owner_start ON jobs (owner, started_at);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_start ON jobs (owner, tenant, started_at);
"""


class _SqliteTx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def one(self, sql: str, *args: Any) -> Row | None:
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def all(self, sql: str, *args: Any) -> list[Row]:
        async with self._db.execute(sql, args) as cur:
            return [dict(row) for row in await cur.fetchall()]

    async def run(self, sql: str, *args: Any) -> int:
        cur = await self._db.execute(sql, args)
        return cur.rowcount


class SqliteStore(SqlStore):
    """One aiosqlite connection, one transaction at a time (writes BEGIN IMMEDIATE, so two
    stores on one file serialize their claims too)."""

    def __init__(self, db: aiosqlite.Connection, result_ttl: int = 0) -> None:
        super().__init__(result_ttl)
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, result_ttl: int = 0) -> SqliteStore:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The key table holds secretKeys (they sign callbacks): readable by the owner only.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = await aiosqlite.connect(path, isolation_level=None)  # we say BEGIN and COMMIT
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db, result_ttl)
        try:
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool,
                           lock: int | None) -> T:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = await work(_SqliteTx(self._db))
                await self._db.execute("COMMIT")  # it can fail too (a full disk)
            except BaseException:
                with contextlib.suppress(Exception):  # a failed COMMIT may have ended it
                    await self._db.execute("ROLLBACK")
                raise
            return result

    async def _migrate(self) -> None:
        await self._db.executescript(SCHEMA)
        async with self._db.execute("SELECT value FROM meta WHERE key='schema'") as cur:
            row = await cur.fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema {row[0]} is newer than this stembot ({SCHEMA_VERSION})")
        async with self._db.execute("PRAGMA table_info(jobs)") as cur:
            present = {str(row[1]) for row in await cur.fetchall()}
        for column, kind in ADDED_COLUMNS:
            if column not in present:
                await self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        await self._db.executescript(ADDED_INDEXES)
        await self._db.execute(
            "INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET"
            " value=excluded.value", (str(SCHEMA_VERSION),))
