"""One bot, many servers: the service's tenant is the server, each server has a cap of open
jobs, and a queued job's reply says where it stands in the service's queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.messages import queue_note
from storage import HistoryFilter, JobState, NewJob
from support.discord_bot import (
    BotFactory,
    Service,
    answered,
    read_bytes,
    refusal,
    start_job_service,
)
from support.fake_discord import GUILD_ID, OWNER_ID, FakeDiscord, InteractionLog

MEMBER = 900_000_000_000_000_100
OTHER = 900_000_000_000_000_103
THIRD = 900_000_000_000_000_104


@pytest_asyncio.fixture
async def idle_service(tmp_path: Path) -> AsyncIterator[Service]:
    """A job service without workers: what the bot submits stays queued."""
    started = await start_job_service(tmp_path / "service", workers=0)
    yield started
    await started.running.stop()


async def separate(fake: FakeDiscord, url: str, user_id: int) -> InteractionLog:
    return await fake.interact("separate", [
        {"name": "stems", "type": 4, "value": 2}, {"name": "url", "type": 3, "value": url},
    ], user_id=user_id)


def reply_has(log: InteractionLog, words: str) -> bool:
    return log.original is not None and words in log.original.content


async def test_the_tenant_is_the_server_and_the_reply_shows_the_queue(
        fake: FakeDiscord, idle_service: Service, bot_factory: BotFactory,
        demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(idle_service) as bot:
        first = await separate(fake, song, MEMBER)
        await fake.wait_until(lambda: reply_has(first, "⏳ queued · next in line"), seconds=60)
        second = await separate(fake, song, OTHER)
        await fake.wait_until(lambda: reply_has(second, "⏳ queued · 1 song ahead"), seconds=60)
        for record_id in (1, 2):
            record = await bot.jobs.require(record_id)
            assert record.service_job_id is not None
            job = await idle_service.store.job(record.service_job_id)
            assert job is not None and job.tenant == str(GUILD_ID)
        # nothing was separated on this service yet: no estimate is made up
        assert first.original is not None and "about" not in first.original.content


async def test_the_server_cap_refuses_clearly(fake: FakeDiscord, bot_factory: BotFactory
                                             ) -> None:
    page = fake.serve("page.html", b"<html></html>", "text/html")
    async with bot_factory(None) as bot:
        log = await fake.interact("jobs", [{"name": "limits", "type": 1, "options": [
            {"name": "server_jobs", "type": 4, "value": 2}]}], user_id=OWNER_ID)
        await answered(fake, log)
        assert "2 open jobs per server" in refusal(log)
        assert (await bot.limits.get(GUILD_ID)).max_server_jobs == 2
        # two members' jobs, one each (under the per-member limit), fill the server's cap
        for user in (MEMBER, OTHER):
            record = await bot.jobs.create(NewJob(GUILD_ID, 1, user, "https://x/a", "a", 2,
                                                  "mp3"))
            await bot.jobs.update(record.id, state=JobState.QUEUED,
                                  service_job_id=f"elsewhere-{record.id}")
        await bot.jobs.create(NewJob(1, 1, THIRD, "https://x/a", "a", 2, "mp3"))  # elsewhere
        log = await separate(fake, page, THIRD)
        await answered(fake, log)
        # ephemeral, as every refusal (harness.refusal checks)
        assert refusal(log) == ("this server already has 2 jobs queued or running, its"
                                " limit; try again when one finishes.")
        assert await bot.jobs.history_count(HistoryFilter(GUILD_ID)) == 2  # nothing new


def test_the_queue_note_says_the_place_and_the_services_estimate() -> None:
    assert queue_note(None) == ""
    assert queue_note({"position": 1, "ahead": 0}) == " · next in line"
    assert queue_note({"position": 4, "ahead": 3, "etaSeconds": 130,
                       "etaBasis": "…"}) == " · 3 songs ahead · about 2 min"
    assert queue_note({"position": 2, "ahead": 1, "etaSeconds": 41}) == (
        " · 1 song ahead · about 40 s")
    assert queue_note({"position": 90, "ahead": 89, "etaSeconds": 4000}).endswith(
        "about 1 h 7 min")
