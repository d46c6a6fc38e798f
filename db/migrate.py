"""One migration runner: numbered `.sql` files per dialect, each applied in one transaction.

A schema family (the job store's, the bot's) is a package with one folder per dialect holding
`0001_name.sql` .. `NNNN_name.sql`, and a ledger: where the database keeps the number of the
last migration applied. Clients starting together against one database take turns (a lock).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from db.connection import Connection, Statements
from db.url import Dialect

_MIGRATION_NAME = re.compile(r"^(\d{4})_\w+\.sql$")


class SchemaError(RuntimeError):
    """The database was written by a newer, unknown schema, or belongs to someone else."""


async def has_table(tx: Statements, dialect: Dialect, name: str) -> bool:
    if dialect is Dialect.SQLITE:
        row = await tx.fetch_one(
            "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return row is not None
    row = await tx.fetch_one("SELECT to_regclass(?) IS NOT NULL AS found", (name,))
    return bool(row and row["found"])


class Ledger(Protocol):
    """Where a database keeps its schema version (0: nothing applied yet)."""

    async def read(self, tx: Statements, dialect: Dialect) -> int: ...

    async def write(self, tx: Statements, dialect: Dialect, version: int) -> None: ...


@dataclass(frozen=True)
class MetaLedger:
    """A row of a key-value table (the job store's `meta`, key 'schema'); the first migration
    creates the table."""

    table: str = "meta"
    key: str = "schema"

    async def read(self, tx: Statements, dialect: Dialect) -> int:
        if not await has_table(tx, dialect, self.table):
            return 0
        row = await tx.fetch_one(f"SELECT value FROM {self.table} WHERE key = ?", (self.key,))
        return int(row["value"]) if row else 0

    async def write(self, tx: Statements, dialect: Dialect, version: int) -> None:
        await tx.execute(f"INSERT INTO {self.table} (key, value) VALUES (?, ?) ON CONFLICT"
                         " (key) DO UPDATE SET value = excluded.value", (self.key, str(version)))


@dataclass(frozen=True)
class UserVersionLedger:
    """SQLite's `PRAGMA user_version`; PostgreSQL has none: a one-row table of that name."""

    table: str

    async def read(self, tx: Statements, dialect: Dialect) -> int:
        if dialect is Dialect.SQLITE:
            row = await tx.fetch_one("PRAGMA user_version")
            return int(row["user_version"]) if row else 0
        if not await has_table(tx, dialect, self.table):
            return 0
        row = await tx.fetch_one(f"SELECT version FROM {self.table}")
        return int(row["version"]) if row else 0

    async def write(self, tx: Statements, dialect: Dialect, version: int) -> None:
        if dialect is Dialect.SQLITE:
            await tx.execute(f"PRAGMA user_version = {int(version)}")
            return
        await tx.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (version INTEGER NOT NULL)")
        await tx.execute(f"DELETE FROM {self.table}")
        await tx.execute(f"INSERT INTO {self.table} (version) VALUES (?)", (version,))


@dataclass(frozen=True)
class Schema:
    """A schema family: its migrations' package, its ledger, the lock its migrations take,
    and a table whose presence in an empty database means the database is someone else's."""

    name: str  # for messages: "the job store", "the bot"
    package: str
    ledger: Ledger
    lock: int
    foreign_table: str = ""

    def migrations(self, dialect: Dialect) -> list[tuple[int, str]]:
        """Every migration of one dialect as (version, SQL), in version order."""
        found: list[tuple[int, str]] = []
        for entry in resources.files(f"{self.package}.{dialect.value}").iterdir():
            match = _MIGRATION_NAME.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
        found.sort()
        versions = [version for version, _ in found]
        if versions != list(range(1, len(versions) + 1)):
            raise RuntimeError(f"{self.package} migrations must be numbered 1..n without"
                               f" gaps: {versions}")
        return found

    async def version(self, conn: Connection) -> int:
        return await conn.run(lambda tx: self.ledger.read(tx, conn.dialect), write=False)

    async def migrate(self, conn: Connection, upto: int | None = None) -> int:
        """Apply the migrations newer than the database (up to `upto`); the version reached.

        Each migration is one transaction: a failure leaves the previous version intact."""
        steps = self.migrations(conn.dialect)
        latest = steps[-1][0] if steps else 0
        for version, sql in steps[:upto]:
            await conn.run(functools.partial(self._apply, dialect=conn.dialect, latest=latest,
                                             version=version, sql=sql), lock=self.lock)
        return await self.version(conn)

    async def _apply(self, tx: Statements, *, dialect: Dialect, latest: int, version: int,
                     sql: str) -> None:
        current = await self.ledger.read(tx, dialect)
        if current > latest:
            raise SchemaError(f"database schema {current} is newer than this stembot's"
                              f" ({latest})")
        if current >= version:
            return
        # An empty PostgreSQL database is often one shared by URL: refuse another's tables.
        if (current == 0 and self.foreign_table and dialect is Dialect.POSTGRESQL
                and await has_table(tx, dialect, self.foreign_table)):
            raise SchemaError(
                f"this PostgreSQL database already has a {self.foreign_table} table that is"
                f" not {self.name}'s: give {self.name} a database of its own")
        await tx.script(sql)
        await self.ledger.write(tx, dialect, version)
