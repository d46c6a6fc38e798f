"""The bot's storage on every backend (the `database` fixture): migrations, job records, limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from db import Dialect, SchemaError, connect
from storage import (
    Database,
    GuildLimits,
    HistoryFilter,
    JobState,
    JobStore,
    LimitStore,
    NewJob,
)
from storage.database import BOT_SCHEMA

REQUEST = NewJob(
    guild_id=1, channel_id=2, user_id=3, input_url="https://example.com/a.mp3",
    track_name="a", stems=4, format="mp3",
)


async def test_migrations_reach_latest_and_are_idempotent(database: Path | str) -> None:
    async with await Database.open(database) as db:
        latest = BOT_SCHEMA.migrations(db.dialect)[-1][0]
        assert await db.version() == latest
    # Reopening applies nothing twice.
    async with await Database.open(database) as db:
        assert await db.migrate() == latest


@pytest.mark.parametrize("version", range(1, len(BOT_SCHEMA.migrations(Dialect.SQLITE)) + 1))
async def test_migrations_upgrade_a_database_of_every_version(
        database: Path | str, version: int) -> None:
    """A database some release left at `version`, with a record in it, upgrades in place."""
    conn = await connect(database)
    try:
        assert await BOT_SCHEMA.version(conn) == 0
        assert await BOT_SCHEMA.migrate(conn, upto=version) == version
        await conn.execute(
            "INSERT INTO jobs (guild_id, channel_id, user_id, input_url, track_name, stems,"
            " format, callback_token, state, created_at, updated_at)"
            " VALUES (1, 2, 3, 'u', 't', 2, 'mp3', 'tok', 'done', 0, 0)"
        )
        await conn.execute("INSERT INTO delivered_stems (job_id, stem, message_id) VALUES"
                           " (1, 'vocals', 9)")
        if version >= 2:  # 0002 made the table
            await conn.execute("INSERT INTO guild_limits (guild_id, daily_quota) VALUES (1, 5)")
    finally:
        await conn.close()
    async with await Database.open(database) as db:
        assert await db.version() == BOT_SCHEMA.migrations(db.dialect)[-1][0]
        record = await JobStore(db).get(1)
        assert record is not None and record.state is JobState.DONE and record.shifts == 1
        assert record.title is None and record.deleted_at is None
        assert (await JobStore(db).delivered(1))["vocals"].message_id == 9
        limits = await LimitStore(db, GuildLimits()).get(1)
        assert limits.daily_quota == (5 if version >= 2 else GuildLimits().daily_quota)
        assert limits.max_server_jobs == GuildLimits().max_server_jobs


async def test_a_database_of_a_newer_bot_is_refused(database: Path | str) -> None:
    async with await Database.open(database) as db:
        newer = await db.version() + 1
        await BOT_SCHEMA.ledger.write(db.connection, db.dialect, newer)
    with pytest.raises(SchemaError, match=f"database schema {newer} is newer"):
        await Database.open(database)


async def test_job_lifecycle_and_finish_once(database: Path | str) -> None:
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        record = await jobs.create(REQUEST)
        assert record.state is JobState.DOWNLOADING and len(record.callback_token) >= 32
        assert (await jobs.by_callback_token(record.callback_token)) == record
        record = await jobs.update(record.id, state=JobState.QUEUED, service_job_id="svc-1")
        assert record.service_job_id == "svc-1" and record.finished_at is None
        assert [r.id for r in await jobs.unfinished()] == [record.id]
        assert await jobs.finish(record.id, JobState.DONE)
        # A second finish (a duplicate callback) changes nothing.
        assert not await jobs.finish(record.id, JobState.FAILED, "late")
        done = await jobs.require(record.id)
        assert done.state is JobState.DONE and done.error is None and done.finished_at
        assert await jobs.unfinished() == []


async def test_update_active_never_overwrites_a_final_state(database: Path | str) -> None:
    """The submission's QUEUED must lose to a cancel that came first."""
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        record = await jobs.create(REQUEST)
        queued = await jobs.update_active(record.id, state=JobState.QUEUED, service_job_id="a")
        assert queued is not None and queued.state is JobState.QUEUED
        assert await jobs.finish(record.id, JobState.CANCELED, "by them")
        assert await jobs.update_active(record.id, state=JobState.QUEUED) is None
        canceled = await jobs.require(record.id)
        assert canceled.state is JobState.CANCELED and canceled.error == "by them"


async def test_counts_for_limits(database: Path | str) -> None:
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        first = await jobs.create(REQUEST)
        await jobs.create(REQUEST)
        await jobs.finish(first.id, JobState.FAILED, "x")
        assert await jobs.count_active(1, 3) == 1
        assert await jobs.count_since(1, 3, time.time() - 60) == 2
        assert await jobs.count_since(1, 3, time.time() + 60) == 0
        assert await jobs.count_active(1, 4) == 0
        last = await jobs.last_submitted(1, 3)
        assert last is not None and abs(last - time.time()) < 5


async def test_delivered_stems_recorded_once(database: Path | str) -> None:
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        record = await jobs.create(REQUEST)
        await jobs.mark_delivered(record.id, "vocals", 10, None)
        await jobs.mark_delivered(record.id, "vocals", 11, None)
        await jobs.mark_delivered(record.id, "other", None, "https://x/y")
        delivered = await jobs.delivered(record.id)
        assert delivered["vocals"].message_id == 10
        assert delivered["other"].link == "https://x/y"


async def test_history_filters_and_pages(database: Path | str) -> None:
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        ids = [(await jobs.create(REQUEST)).id for _ in range(7)]
        other = await jobs.create(NewJob(1, 2, 9, "u", "t", 2, "wav"))
        await jobs.finish(ids[0], JobState.FAILED, "bad")
        everyone = HistoryFilter(guild_id=1)
        assert await jobs.history_count(everyone) == 8
        page = await jobs.history(everyone, offset=0, limit=5)
        assert [r.id for r in page] == [other.id, *reversed(ids[3:])]
        assert len(await jobs.history(everyone, offset=5, limit=5)) == 3
        assert await jobs.history_count(HistoryFilter(1, user_id=9)) == 1
        failed = await jobs.history(HistoryFilter(1, state=JobState.FAILED), 0, 5)
        assert [r.error for r in failed] == ["bad"]
        assert await jobs.history_count(HistoryFilter(1, since=time.time() + 60)) == 0
        assert await jobs.history_count(HistoryFilter(guild_id=2)) == 0


async def test_guild_limits_override_defaults(database: Path | str) -> None:
    async with await Database.open(database) as db:
        defaults = GuildLimits(max_concurrent=2, daily_quota=5)
        limits = LimitStore(db, defaults)
        assert await limits.get(1) == defaults
        changed = await limits.set(1, daily_quota=1, moderator_role_id=77)
        assert changed.daily_quota == 1 and changed.max_concurrent == 2
        assert changed.moderator_role_id == 77
        assert await limits.get(2) == defaults
        restored = await limits.set(1, daily_quota=None)
        assert restored.daily_quota == 5
