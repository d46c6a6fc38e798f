"""The bot's database: its records' schema on the ground floor's Connection (db/)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from db import Connection, Dialect, Schema, UserVersionLedger, connect

# Versions in SQLite's user_version, or in a table of their own on PostgreSQL (as since the
# first release); migrations of bots starting at once take turns on one lock ("stmb").
BOT_SCHEMA = Schema(name="the bot", package="storage.migrations",
                    ledger=UserVersionLedger("bot_schema_version"), lock=0x73746D62,
                    foreign_table="jobs")


class Database:
    """An open, migrated database; use `await Database.open(target)` and `await db.close()`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, target: Path | str) -> Database:
        """`target`: the SQLite file's path, or a postgresql:// URL."""
        db = cls(await connect(target, pool_size=4, name="stembot-bot"))
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
        return await BOT_SCHEMA.version(self.connection)

    async def migrate(self) -> int:
        """Apply the migrations newer than the database; return the resulting version."""
        return await BOT_SCHEMA.migrate(self.connection)

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
