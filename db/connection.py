"""The one interface every query runs on, whichever database holds the rows.

SQL is written once, in the common dialect of SQLite and PostgreSQL, with `?` placeholders
(never a `?` inside a literal); each implementation translates what it must. Work that must
commit together is a function run in one transaction: `run(work)`; PostgreSQL runs it again
on a fresh connection when the server went away, so the work must not act outside the
database before it returns.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from db.url import Dialect

Row = Mapping[str, Any]
Params = Sequence[Any]
T = TypeVar("T")


class Unavailable(ConnectionError):
    """The database did not answer, even after retries."""


class Statements(Protocol):
    """Running statements inside one transaction (or, on a Connection, each by itself)."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def script(self, sql: str) -> None:
        """Run several statements (a migration file: our own SQL, never input)."""
        ...


class Connection(Statements, Protocol):
    """An open database: lone statements, transactions, and its dialect."""

    @property
    def dialect(self) -> Dialect: ...

    def transaction(self, *, write: bool = True, lock: int | None = None
                    ) -> AbstractAsyncContextManager[Statements]:
        """Statements on the yielded object commit together, or not at all; `lock` names a
        lock that serializes this transaction with others of the same lock, on any node."""
        ...

    async def run(self, work: Callable[[Statements], Awaitable[T]], *, write: bool = True,
                  lock: int | None = None) -> T:
        """`work` in one transaction, run to its end even if the caller is cancelled."""
        ...

    async def close(self) -> None: ...


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a transaction nobody awaits any more (its caller was cancelled)."""
    if not task.cancelled():
        task.exception()


async def shielded(work: Awaitable[T]) -> T:
    """Await `work` so that a cancelled caller does not stop it midway: a transaction, a few
    statements, runs to its end rather than leaving the connection inside it."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_consume)
        raise


_COMMENT = re.compile(r"--[^\n]*")


def split_script(sql: str) -> list[str]:
    """A migration file's statements (comments dropped; our files hold no `;` or `--` in a
    literal)."""
    return [part.strip() for part in _COMMENT.sub("", sql).split(";") if part.strip()]


class Transactions:
    """What both backends share: lone statements are one-statement transactions of `run`."""

    def transaction(self, *, write: bool = True, lock: int | None = None
                    ) -> AbstractAsyncContextManager[Statements]:
        raise NotImplementedError

    async def run(self, work: Callable[[Statements], Awaitable[T]], *, write: bool = True,
                  lock: int | None = None) -> T:
        return await shielded(self._run(work, write=write, lock=lock))

    async def _run(self, work: Callable[[Statements], Awaitable[T]], *, write: bool,
                   lock: int | None) -> T:
        async with self.transaction(write=write, lock=lock) as tx:
            return await work(tx)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self.run(lambda tx: tx.execute(sql, params))

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self.run(lambda tx: tx.execute_many(sql, list(rows)))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        return await self.run(lambda tx: tx.fetch_one(sql, params), write=False)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.run(lambda tx: tx.fetch_all(sql, params), write=False)

    async def script(self, sql: str) -> None:
        await self.run(lambda tx: tx.script(sql))
