"""What every part of the job store stands on: its open connection, one transaction per call.

Statements use `?` placeholders (the PostgreSQL connection rewrites them). Times are the
writing node's clock in ms, so the nodes' clocks must agree to well within a lease (NTP).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from db import Connection, Dialect, Statements, Unavailable
from service.errors import DatabaseUnavailable
from service.protocol import Job
from service.store import now_ms
from service.store_rows import Row, load_job
from wire.enums import State

T = TypeVar("T")

OPEN = (int(State.SUBMITTED), int(State.PROCESSING))
NO_LIMIT = 2**62  # LIMIT for "all": SQLite reads -1 as none, PostgreSQL refuses it
# Transaction-level locks (PostgreSQL advisory lock keys; SQLite's writes serialize anyway).
MIGRATE_LOCK = 7_310_000
CLAIM_LOCK = 7_310_001
CALLBACK_LOCK = 7_310_002
INSERT_LOCK = 7_310_003


class Tx:
    """One open transaction as the store's SQL reads best: arguments inline, rows as
    mappings, `run` returns the affected row count."""

    def __init__(self, statements: Statements) -> None:
        self._s = statements

    async def one(self, sql: str, *args: Any) -> Row | None:
        return await self._s.fetch_one(sql, args)

    async def all(self, sql: str, *args: Any) -> list[Row]:
        return await self._s.fetch_all(sql, args)

    async def run(self, sql: str, *args: Any) -> int:
        return await self._s.execute(sql, args)


def separated(outputs: str) -> bool:
    """Whether a job's stored outputs hold a result a worker made (not all from the cache)."""
    return any(not result.get("fromCache", False)
               for output in json.loads(outputs)
               for result in (output.get("smartContentResult") or {}).get("musicSeperate", []))


def lease_end(lease_s: float, at: int | None = None) -> int:
    return (at if at is not None else now_ms()) + int(lease_s * 1000)


class SqlBase:
    """The connection (migrated already) and the transaction helpers the parts share."""

    def __init__(self, conn: Connection, result_ttl: int = 0) -> None:
        self._conn = conn
        self._ttl_ms = result_ttl * 1000  # STEMBOT_RESULT_TTL, for jobs' `resultsExpireAt`
        # Several nodes share a PostgreSQL database (the link secret is kept in it then).
        self.shared = conn.dialect is Dialect.POSTGRESQL

    async def close(self) -> None:
        await self._conn.close()

    async def _tx(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True,
                  lock: int | None = None) -> T:
        """Run `work` in one transaction; `lock` serializes it with others of that lock."""
        try:
            return await self._conn.run(lambda s: work(Tx(s)), write=write, lock=lock)
        except Unavailable as error:  # a clear 503 for the API's callers; sweeps try again
            raise DatabaseUnavailable(
                "the job database could not be reached; try again shortly") from error

    def _job(self, row: Row) -> Job:
        return load_job(row, self._ttl_ms)

    async def _read_one(self, sql: str, *args: Any) -> Row | None:
        return await self._tx(lambda tx: tx.one(sql, *args), write=False)

    async def _read_all(self, sql: str, *args: Any) -> list[Row]:
        return await self._tx(lambda tx: tx.all(sql, *args), write=False)

    async def _write(self, sql: str, *args: Any) -> int:
        return await self._tx(lambda tx: tx.run(sql, *args))

    async def _write_one(self, sql: str, *args: Any) -> Row | None:
        return await self._tx(lambda tx: tx.one(sql, *args))
