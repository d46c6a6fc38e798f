"""Per-guild limits: the settings give the defaults, moderators override them per guild."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from db import Statements
from storage.database import Database


@dataclass(frozen=True, slots=True)
class GuildLimits:
    """What one member may submit in one guild; 0 turns a count or size limit off."""

    max_concurrent: int = 2
    daily_quota: int = 20
    cooldown_seconds: int = 30
    max_seconds: int = 15 * 60
    max_mib: int = 100
    moderator_role_id: int | None = None
    max_server_jobs: int = 10  # open jobs of all the server's members together


LIMIT_FIELDS = tuple(field.name for field in dataclasses.fields(GuildLimits))


class LimitStore:
    """Reads and writes the `guild_limits` overrides."""

    def __init__(self, db: Database, defaults: GuildLimits) -> None:
        self._conn = db.connection
        self.defaults = defaults

    async def get(self, guild_id: int) -> GuildLimits:
        row = await self._conn.fetch_one(
            "SELECT * FROM guild_limits WHERE guild_id = ?", (guild_id,))
        if row is None:
            return self.defaults
        overrides = {name: row[name] for name in LIMIT_FIELDS if row[name] is not None}
        return dataclasses.replace(self.defaults, **overrides)

    async def set(self, guild_id: int, **values: Any) -> GuildLimits:
        """Override some limits for one guild; None restores the default."""
        unknown = set(values) - set(LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
        async def write(tx: Statements) -> None:
            await tx.execute(
                "INSERT INTO guild_limits (guild_id) VALUES (?) ON CONFLICT (guild_id) DO NOTHING",
                (guild_id,))
            if values:
                assignments = ", ".join(f"{name} = ?" for name in values)
                await tx.execute(
                    f"UPDATE guild_limits SET {assignments} WHERE guild_id = ?",
                    (*values.values(), guild_id),
                )
        await self._conn.run(write)
        return await self.get(guild_id)
