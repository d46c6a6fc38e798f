"""Job records: what each /separate asked for, where it is, and what was delivered."""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db import Row, Statements
from storage.database import Database


class JobState(enum.StrEnum):
    """The bot's view of a job; the value is what users read."""

    DOWNLOADING = "downloading"
    QUEUED = "queued"
    SEPARATING = "separating"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @classmethod
    def active(cls) -> tuple[JobState, ...]:
        return tuple(state for state in cls if not state.final)


_FINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELED})


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a member asked for, before anything is submitted."""

    guild_id: int
    channel_id: int
    user_id: int
    input_url: str
    track_name: str
    stems: int
    format: str
    shifts: int = 1  # the quality: 1 standard, more for `high`


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    guild_id: int
    channel_id: int
    thread_id: int | None
    message_id: int | None
    user_id: int
    input_url: str
    track_name: str
    stems: int
    format: str
    service_job_id: str | None
    callback_token: str
    state: JobState
    progress: int
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    shifts: int = 1
    deleted_at: float | None = None  # /job delete: the service's files and our posts removed
    deleted_by: int | None = None
    files_until: float | None = None  # when the service deletes the files; None: kept
    title: str | None = None  # "Artist – Title" from a page link's page, once checked

    @property
    def shown_title(self) -> str:
        """What members read as the track's name: the page's title, else the file's name."""
        return self.title or self.track_name

    def files_expired(self, now: float | None = None) -> bool:
        return self.files_until is not None and self.files_until <= (now or time.time())

    @property
    def custom_id(self) -> str:
        """The protocol's customId for this record (under 64 characters)."""
        return f"stembot-discord-{self.id}"

    @classmethod
    def from_row(cls, row: Row) -> JobRecord:
        values = dict(row)
        values["state"] = JobState(values["state"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DeliveredStem:
    stem: str
    message_id: int | None
    link: str | None


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    guild_id: int
    user_id: int | None = None
    state: JobState | None = None
    since: float | None = None


class JobStore:
    """Queries over the `jobs` and `delivered_stems` tables."""

    def __init__(self, db: Database) -> None:
        self._conn = db.connection

    async def create(self, job: NewJob, state: JobState = JobState.DOWNLOADING) -> JobRecord:
        now = time.time()
        # The callback path carries this token, so nobody can guess another job's URL.
        token = secrets.token_urlsafe(24)
        row = await self._conn.fetch_one(
            "INSERT INTO jobs (guild_id, channel_id, user_id, input_url, track_name, stems,"
            " format, shifts, callback_token, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (job.guild_id, job.channel_id, job.user_id, job.input_url, job.track_name,
             job.stems, job.format, job.shifts, token, state.value, now, now),
        )
        assert row is not None
        return await self.require(int(row["id"]))

    async def get(self, job_id: int) -> JobRecord | None:
        return await self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def require(self, job_id: int) -> JobRecord:
        record = await self.get(job_id)
        if record is None:
            raise KeyError(f"job {job_id} does not exist")
        return record

    async def by_callback_token(self, token: str) -> JobRecord | None:
        return await self._one("SELECT * FROM jobs WHERE callback_token = ?", (token,))

    async def update(self, job_id: int, **fields: Any) -> JobRecord:
        """Set columns; a final state also stamps `finished_at`."""
        await self._set(job_id, fields, only_active=False)
        return await self.require(job_id)

    async def update_active(self, job_id: int, **fields: Any) -> JobRecord | None:
        """Set columns only while the job is not final; None if it already was.

        For writers that may race a cancel: a final state must never be overwritten.
        """
        if not await self._set(job_id, fields, only_active=True):
            return None
        return await self.require(job_id)

    async def _set(self, job_id: int, fields: dict[str, Any], *, only_active: bool) -> bool:
        if isinstance(fields.get("state"), JobState):
            state: JobState = fields["state"]
            fields["state"] = state.value
            if state.final:
                fields.setdefault("finished_at", time.time())
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE jobs SET {assignments} WHERE id = ?"
        params: list[Any] = [*fields.values(), job_id]
        if only_active:
            active = [s.value for s in JobState.active()]
            sql += f" AND state IN ({', '.join('?' * len(active))})"
            params += active
        return await self._conn.execute(sql, params) == 1

    async def finish(self, job_id: int, state: JobState, error: str | None = None) -> bool:
        """Move an active job to a final state; False if it already was final (a duplicate)."""
        now = time.time()
        active = [s.value for s in JobState.active()]
        changed = await self._conn.execute(
            f"UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ?"
            f" WHERE id = ? AND state IN ({', '.join('?' * len(active))})",
            (state.value, error, now, now, job_id, *active),
        )
        return changed == 1

    async def unfinished(self) -> list[JobRecord]:
        active = [s.value for s in JobState.active()]
        return await self._many(
            f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(active))}) ORDER BY id",
            active,
        )

    async def count_active(self, guild_id: int, user_id: int) -> int:
        active = [s.value for s in JobState.active()]
        return await self._count(
            f"SELECT COUNT(*) AS n FROM jobs WHERE guild_id = ? AND user_id = ?"
            f" AND state IN ({', '.join('?' * len(active))})",
            (guild_id, user_id, *active),
        )

    async def count_active_in_guild(self, guild_id: int) -> int:
        """The server's open jobs, all members together (the per-server cap)."""
        active = [s.value for s in JobState.active()]
        return await self._count(
            f"SELECT COUNT(*) AS n FROM jobs WHERE guild_id = ?"
            f" AND state IN ({', '.join('?' * len(active))})",
            (guild_id, *active),
        )

    async def count_since(self, guild_id: int, user_id: int, since: float) -> int:
        """Jobs submitted since `since`, whatever became of them (the daily quota)."""
        return await self._count(
            "SELECT COUNT(*) AS n FROM jobs WHERE guild_id = ? AND user_id = ?"
            " AND created_at >= ?",
            (guild_id, user_id, since),
        )

    async def last_submitted(self, guild_id: int, user_id: int) -> float | None:
        row = await self._conn.fetch_one(
            "SELECT MAX(created_at) AS last FROM jobs WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        return float(row["last"]) if row and row["last"] is not None else None

    async def recent_for_user(
        self, guild_id: int, user_id: int, limit: int = 25
    ) -> list[JobRecord]:
        return await self._many(
            "SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )

    async def recent_in_guild(self, guild_id: int, limit: int = 25) -> list[JobRecord]:
        return await self._many(
            "SELECT * FROM jobs WHERE guild_id = ? ORDER BY id DESC LIMIT ?", (guild_id, limit)
        )

    async def history(self, where: HistoryFilter, offset: int, limit: int) -> list[JobRecord]:
        clause, params = _history_clause(where)
        return await self._many(
            f"SELECT * FROM jobs WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )

    async def history_count(self, where: HistoryFilter) -> int:
        clause, params = _history_clause(where)
        return await self._count(f"SELECT COUNT(*) AS n FROM jobs WHERE {clause}", params)

    async def delivered(self, job_id: int) -> dict[str, DeliveredStem]:
        rows = await self._conn.fetch_all(
            "SELECT stem, message_id, link FROM delivered_stems WHERE job_id = ?", (job_id,))
        return {row["stem"]: DeliveredStem(row["stem"], row["message_id"], row["link"])
                for row in rows}

    async def pending_mixes(self, asked: str, posted: str) -> list[tuple[int, str]]:
        """(job id, preset) of every part `asked + preset` without its `posted + preset`."""
        # CAST: PostgreSQL must know a parameter is text before it concatenates it.
        rows = await self._conn.fetch_all(
            "SELECT a.job_id, substr(a.stem, ?) AS preset FROM delivered_stems a"
            " WHERE a.stem LIKE CAST(? AS TEXT) || '%' AND NOT EXISTS (SELECT 1 FROM"
            " delivered_stems b WHERE b.job_id = a.job_id"
            " AND b.stem = CAST(? AS TEXT) || substr(a.stem, ?))"
            " ORDER BY a.job_id, a.stem",
            (len(asked) + 1, asked, posted, len(asked) + 1),
        )
        return [(int(row["job_id"]), str(row["preset"])) for row in rows]

    async def mark_delivered(
        self, job_id: int, stem: str, message_id: int | None, link: str | None
    ) -> None:
        await self._conn.execute(
            "INSERT INTO delivered_stems (job_id, stem, message_id, link)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id, stem) DO NOTHING",
            (job_id, stem, message_id, link),
        )

    # --- takedowns: the intent is recorded first, so a restart finishes it ----------------

    async def mark_deleted(self, job_id: int, by: int) -> bool:
        """Record a takedown; False if the job was already taken down."""
        changed = await self._conn.execute(
            "UPDATE jobs SET deleted_at = ?, deleted_by = ?, updated_at = ?"
            " WHERE id = ? AND deleted_at IS NULL", (time.time(), by, time.time(), job_id))
        return changed == 1

    async def posts_to_remove(self, job_id: int) -> list[DeliveredStem]:
        rows = await self._conn.fetch_all(
            "SELECT stem, message_id, link FROM delivered_stems WHERE job_id = ?"
            " AND removed = 0 AND message_id IS NOT NULL", (job_id,))
        return [DeliveredStem(row["stem"], row["message_id"], row["link"]) for row in rows]

    async def mark_removed(self, job_id: int, stem: str, message_id: int | None = None) -> None:
        """The post is gone (or, for the takedown notice, must never be removed)."""
        await self._conn.execute(
            "INSERT INTO delivered_stems (job_id, stem, message_id, link, removed)"
            " VALUES (?, ?, ?, NULL, 1) ON CONFLICT (job_id, stem) DO UPDATE SET removed = 1",
            (job_id, stem, message_id))

    async def forget_before(self, before: float) -> int:
        """BOT_RETENTION_DAYS: drop records that ended before the time (and whose takedown,
        if any, is complete); how many went."""
        async def forget(tx: Statements) -> int:
            rows = await tx.fetch_all(f"SELECT id FROM jobs WHERE {_FORGETTABLE}", (before,))
            ids = [(row["id"],) for row in rows]
            await tx.execute_many("DELETE FROM delivered_stems WHERE job_id = ?", ids)
            await tx.execute_many("DELETE FROM jobs WHERE id = ?", ids)
            return len(ids)
        return await self._conn.run(forget)

    async def unfinished_takedowns(self) -> list[JobRecord]:
        """Taken down, but with a post or the notice still to do."""
        return await self._many(
            "SELECT * FROM jobs WHERE deleted_at IS NOT NULL AND (EXISTS (SELECT 1 FROM"
            " delivered_stems d WHERE d.job_id = jobs.id AND d.removed = 0 AND d.message_id"
            " IS NOT NULL) OR NOT EXISTS (SELECT 1 FROM delivered_stems d WHERE"
            " d.job_id = jobs.id AND d.stem = 'takedown')) ORDER BY id", ())

    async def _one(self, sql: str, params: Sequence[Any]) -> JobRecord | None:
        row = await self._conn.fetch_one(sql, params)
        return JobRecord.from_row(row) if row else None

    async def _many(self, sql: str, params: Sequence[Any]) -> list[JobRecord]:
        return [JobRecord.from_row(row) for row in await self._conn.fetch_all(sql, params)]

    async def _count(self, sql: str, params: Sequence[Any]) -> int:
        row = await self._conn.fetch_one(sql, params)
        return int(row["n"]) if row else 0


_FORGETTABLE = (
    "finished_at IS NOT NULL AND finished_at < ? AND (deleted_at IS NULL OR EXISTS (SELECT 1"
    " FROM delivered_stems d WHERE d.job_id = jobs.id AND d.stem = 'takedown'))")


def _history_clause(where: HistoryFilter) -> tuple[str, list[Any]]:
    parts = ["guild_id = ?"]
    params: list[Any] = [where.guild_id]
    if where.user_id is not None:
        parts.append("user_id = ?")
        params.append(where.user_id)
    if where.state is not None:
        parts.append("state = ?")
        params.append(where.state.value)
    if where.since is not None:
        parts.append("created_at >= ?")
        params.append(where.since)
    return " AND ".join(parts), params
