"""`/job delete`: the service deletes the job, the bot its posts in the thread, once, also
when a stop came between recording the takedown and carrying it out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.messages import history_line
from bot.settings import BotSettings
from storage import Database, JobRecord, JobState, JobStore, NewJob
from support.discord_bot import (
    BotFactory,
    Service,
    answered,
    read_bytes,
    refusal,
    start_job_service,
)
from support.fake_discord import GUILD_ID, OWNER_ID, FakeDiscord, InteractionLog

MEMBER = 900_000_000_000_000_111
OTHER = 900_000_000_000_000_112


async def separate(fake: FakeDiscord, song: str) -> InteractionLog:
    log = await fake.interact("separate", [
        {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
        {"name": "format", "type": 3, "value": "wav"},
    ], user_id=MEMBER)
    await fake.wait_until(lambda: log.original is not None and "done" in log.original.content,
                          seconds=240)
    return log


async def delete(fake: FakeDiscord, job_id: int, user_id: int) -> InteractionLog:
    log = await fake.interact("job", [{"name": "delete", "type": 1, "options": [
        {"name": "id", "type": 4, "value": job_id}]}], user_id=user_id)
    await fake.wait_until(lambda: log.callback is not None, seconds=30)
    return log


def noticed(fake: FakeDiscord, record: JobRecord) -> bool:
    """The takedown notice is in the thread."""
    return any("was deleted by" in m.content for m in fake.in_channel(record.thread_id or 0))


def posted_ids(fake: FakeDiscord, record: JobRecord) -> list[int]:
    assert record.thread_id is not None
    return [m.id for m in fake.in_channel(record.thread_id)]


async def taken_down(service: Service, fake: FakeDiscord, record: JobRecord, posts: list[int]
                     ) -> None:
    """The service deleted the job; each post was deleted once; one notice says so."""
    assert record.service_job_id is not None and record.thread_id is not None
    job = await service.store.job(record.service_job_id)
    assert job is not None and job.deleted_at > 0
    assert all(fake.deletions[post] == 1 for post in posts), fake.deletions
    left = fake.in_channel(record.thread_id)
    assert [m.content.split(" was ")[0] for m in left] == [f"🗑️ job #{record.id}"]
    assert f"<@{record.deleted_by}>" in left[0].content


async def test_a_member_deletes_a_job_and_a_restart_finishes_a_takedown(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
) -> None:
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        await separate(fake, song)
        first = await bot.jobs.require(1)
        first_posts = posted_ids(fake, first)
        assert len(first_posts) == 3  # two stems and the summary
        assert "files kept 7 days, until <t:" in fake.messages[first_posts[-1]].content
        refused = await delete(fake, 1, OTHER)
        assert "only they or a moderator" in refusal(refused)
        await delete(fake, 1, MEMBER)
        await fake.wait_until(lambda: noticed(fake, first))
        first = await bot.jobs.require(1)
        assert first.deleted_by == MEMBER and first.deleted_at is not None
        await taken_down(service, fake, first, first_posts)
        assert "deleted by" in history_line(first)
        assert f"deleted by <@{MEMBER}>" in await job_status(fake, 1)
        # a mix of the deleted job is answered in words, and nothing is asked of the service
        typed = await fake.interact("mix", [{"name": "job", "type": 4, "value": 1},
                                            {"name": "preset", "type": 3,
                                             "value": "instrumental"}], user_id=MEMBER)
        await fake.wait_until(lambda: bool(typed.followups), seconds=30)
        assert "job #1's files are gone · deleted by" in typed.followups[0]
        assert "no mix can be made now" in typed.followups[0]
        assert first.service_job_id is not None
        assert await service.store.mixes_of(first.service_job_id) == []

        await separate(fake, song)
        second = await bot.jobs.require(2)
        second_posts = posted_ids(fake, second)
        # A stop right after the takedown was recorded, before anything was removed.
        assert await bot.jobs.mark_deleted(2, MEMBER)

    async with bot_factory(service) as bot:
        await fake.wait_until(lambda: noticed(fake, second))
        second = await bot.jobs.require(2)
        await taken_down(service, fake, second, second_posts)
        await taken_down(service, fake, await bot.jobs.require(1), first_posts)  # not again
        again = await delete(fake, 2, MEMBER)
        await fake.wait_until(lambda: bool(again.followups))
        assert "already deleted" in again.followups[-1]
    async with bot_factory(service):  # a further start finds nothing left to do
        pass
    await taken_down(service, fake, second, second_posts)


async def expired(service: Service, job_id: str) -> bool:
    job = await service.store.job(job_id)
    return job is not None and job.expired_at > 0


async def job_status(fake: FakeDiscord, job_id: int) -> str:
    log = await fake.interact("job", [{"name": "status", "type": 1, "options": [
        {"name": "id", "type": 4, "value": job_id}]}], user_id=MEMBER)
    await answered(fake, log)
    return refusal(log)


async def test_the_summary_says_how_long_files_stay_and_expiry_is_told_in_words(
    fake: FakeDiscord, bot_factory: BotFactory, demo_wav: Path, tmp_path: Path,
) -> None:
    service = await start_job_service(tmp_path / "service", result_ttl=3)
    try:
        song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
        async with bot_factory(service) as bot:
            await separate(fake, song)
            record = await bot.jobs.require(1)
            assert record.thread_id is not None and record.service_job_id is not None
            summary = fake.in_channel(record.thread_id)[-1].content
            assert "files kept 3 seconds, until <t:" in summary
            assert "files kept until <t:" in await job_status(fake, 1)
            async with asyncio.timeout(30):  # the service's sweep, and the bot's own clock
                while not (await expired(service, record.service_job_id)  # noqa: ASYNC110
                           and record.files_expired()):
                    await asyncio.sleep(0.1)
            assert "files expired <t:" in await job_status(fake, 1)
            history = await fake.interact("jobs", [{"name": "history", "type": 1,
                                                    "options": []}], user_id=OWNER_ID)
            await answered(fake, history)
            assert "**done, files expired <t:" in refusal(history)
    finally:
        await service.running.stop()


async def test_bot_retention_days_forgets_old_records_but_not_unfinished_takedowns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = await Database.open(tmp_path / "bot.sqlite3")
    jobs = JobStore(db)
    try:
        made = [await jobs.create(NewJob(GUILD_ID, 1, MEMBER, "https://x/a.wav", "a", 2, "wav"))
                for _ in range(4)]
        for record in made[:3]:
            await jobs.finish(record.id, JobState.DONE)
            await jobs.mark_delivered(record.id, "vocals", 1, None)
        await jobs.mark_deleted(made[1].id, MEMBER)  # its takedown is not finished
        await jobs.mark_deleted(made[2].id, MEMBER)
        await jobs.mark_removed(made[2].id, "takedown", 2)
        assert await jobs.forget_before(time.time() - 3600) == 0  # all recent
        assert await jobs.forget_before(time.time() + 1) == 2
        assert [r.id for r in await jobs.recent_in_guild(GUILD_ID)] == [made[3].id, made[1].id]
        assert await jobs.delivered(made[0].id) == {}
    finally:
        await db.close()
    monkeypatch.setenv("BOT_RETENTION_DAYS", "30")
    assert BotSettings.from_env().retention_days == 30
    assert BotSettings().retention_days == 0  # keep: moderators need the history


async def test_a_start_removes_the_scratch_a_stopped_run_left(
    bot_factory: BotFactory, tmp_path: Path,
) -> None:
    scratch = tmp_path / "bot" / "bot-work"
    (scratch / "tmpabc").mkdir(parents=True)
    (scratch / "tmpabc" / "vocals.source").write_bytes(b"RIFF")
    (scratch / "x.input").write_bytes(b"RIFF")
    async with bot_factory(None):
        assert list(scratch.iterdir()) == []
