"""The bot's database: SQLite or PostgreSQL behind one Connection, with versioned migrations."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from types import TracebackType

from storage.connection import Connection, Dialect, database_dialect

_MIGRATION_NAME = re.compile(r"^(\d{4})_\w+\.sql$")


def migrations(dialect: Dialect = Dialect.SQLITE) -> list[tuple[int, str]]:
    """Every migration of one dialect as (version, SQL), in version order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files(f"storage.migrations.{dialect.value}").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"storage migrations must be numbered 1..n without gaps: {versions}")
    return found


async def connect(target: Path | str) -> Connection:
    """The one place that picks the backend: a postgresql:// URL is PostgreSQL, a path is
    the SQLite file; ValueError for any other URL."""
    # database_dialect raises for a URL that is not PostgreSQL's.
    if isinstance(target, str) and "://" in target and (
            database_dialect(target) is Dialect.POSTGRESQL):
        from storage.postgres import PostgresConnection  # the driver only when used

        return await PostgresConnection.open(target)
    from storage.sqlite import SqliteConnection

    return await SqliteConnection.open(target)


class Database:
    """An open, migrated database; use `await Database.open(target)` and `await db.close()`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, target: Path | str) -> Database:
        """`target`: the SQLite file's path, or a postgresql:// URL."""
        db = cls(await connect(target))
        try:
            await db.migrate()
        except BaseException:
            await db.close()
            raise
        return db

    @property
    def dialect(self) -> Dialect:
        return self.connection.dialect

    async def version(self) -> int:
        return await self.connection.version()

    async def migrate(self) -> int:
        """Apply the migrations newer than the database; return the resulting version."""
        # Each migration is one transaction: a failure leaves the previous version intact.
        for version, sql in migrations(self.dialect):
            await self.connection.apply(version, sql)
        return await self.version()

    async def close(self) -> None:
        await self.connection.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
