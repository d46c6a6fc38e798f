"""SQLite behind the storage Connection: one aiosqlite connection, `PRAGMA user_version`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiosqlite

from storage.connection import Dialect, Params, Row, Statements


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class _Statements:
    """Statements on the raw connection; the caller holds the connection's lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        # Closing the cursor ends the statement, so an `INSERT … RETURNING` commits here.
        async with self._conn.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return cast(Row | None, row)  # rows are _dict_row's dicts

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._conn.execute(sql, params) as cursor:
            return cast(list[Row], list(await cursor.fetchall()))


class SqliteConnection:
    """The bot's SQLite file; statements and transactions take turns on one connection."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._statements = _Statements(conn)
        # One connection is one transaction at a time: a lone statement must not land in
        # (or commit) another task's open transaction.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> SqliteConnection:
        if str(path) != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        # isolation_level=None: autocommit, and BEGIN/COMMIT only where we write them.
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = _dict_row  # type: ignore[assignment]  # any callable works
        # WAL lets moderators read history while a delivery writes.
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        return cls(conn)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            return await self._statements.execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as tx:
            await tx.execute_many(sql, rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._lock:
            return await self._statements.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return await self._statements.fetch_all(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        async with self._lock:
            # IMMEDIATE takes the write lock at once: no read-then-upgrade deadlock.
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._statements
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def version(self) -> int:
        row = await self.fetch_one("PRAGMA user_version")
        return int(row["user_version"]) if row else 0

    async def apply(self, version: int, script: str) -> bool:
        async with self._lock:
            row = await self._statements.fetch_one("PRAGMA user_version")
            if row and int(row["user_version"]) >= version:
                return False
            try:
                # A script may hold many statements, which only executescript runs.
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\n;PRAGMA user_version = {int(version)};\nCOMMIT;")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
            return True

    async def close(self) -> None:
        await self._conn.close()
