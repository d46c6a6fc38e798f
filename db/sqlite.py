"""SQLite behind the Connection: one aiosqlite connection, one transaction at a time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiosqlite

from db.connection import Params, Row, Statements, Transactions, split_script
from db.url import Dialect


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
        async with self._conn.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return cast(Row | None, row)  # rows are _dict_row's dicts

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._conn.execute(sql, params) as cursor:
            return cast(list[Row], list(await cursor.fetchall()))

    async def script(self, sql: str) -> None:
        # executescript would COMMIT the open transaction first: one statement at a time.
        for statement in split_script(sql):
            await self.execute(statement)


class SqliteConnection(Transactions):
    """A SQLite file; transactions take turns on its one connection. Writes BEGIN IMMEDIATE,
    so two connections on one file serialize their writes (and `lock`s) too."""

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
            await asyncio.to_thread(_create_private, Path(path))
        # isolation_level=None: autocommit, and BEGIN/COMMIT only where we write them.
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = _dict_row  # type: ignore[assignment]  # any callable works
        # WAL lets readers read while a write is under way.
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        return cls(conn)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True, lock: int | None = None
                          ) -> AsyncIterator[Statements]:
        # `lock` needs nothing here: BEGIN IMMEDIATE already serializes every write.
        async with self._lock:
            # IMMEDIATE takes the write lock at once: no read-then-upgrade deadlock.
            await self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._statements
                await self._conn.execute("COMMIT")  # it can fail too (a full disk)
            except BaseException:
                with contextlib.suppress(Exception):  # a failed COMMIT may have ended it
                    await self._conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        await self._conn.close()


def _create_private(path: Path) -> None:
    """The file and its folder, readable by the owner only: they hold secrets (keys that
    sign callbacks, callback tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
