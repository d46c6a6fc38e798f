"""`/job delete`: the service deletes the job, the bot its posts in the thread, once, also
when a stop came between recording the takedown and carrying it out."""

from __future__ import annotations

from pathlib import Path

from fake_discord import FakeDiscord, InteractionLog
from harness import BotFactory, Service, read_bytes, refusal

from bot.messages import history_line
from storage import JobRecord

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
        refused = await delete(fake, 1, OTHER)
        assert "only they or a moderator" in refusal(refused)
        await delete(fake, 1, MEMBER)
        await fake.wait_until(lambda: noticed(fake, first))
        first = await bot.jobs.require(1)
        assert first.deleted_by == MEMBER and first.deleted_at is not None
        await taken_down(service, fake, first, first_posts)
        assert "deleted by" in history_line(first)

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
