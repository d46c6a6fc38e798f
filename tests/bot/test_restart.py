"""A bot restart while its job runs: the job is reconciled by polling and delivered once;
stems over the guild's upload limit arrive as signed links."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import discord
import pytest

from storage import JobState
from support.discord_bot import BotFactory, Service, decoded_seconds, read_bytes
from support.fake_discord import FakeDiscord

MEMBER = 900_000_000_000_000_102
# A guild whose upload limit no 7 s WAV stem fits.
TINY_LIMIT = 100_000


async def service_job_final(service: Service, job_id: str) -> None:
    for _ in range(300):
        job = await service.store.job(job_id)
        if job is not None and job.state.final:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the service did not finish job {job_id}")


async def test_restart_reconciles_and_delivers_links_once(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord.Guild, "filesize_limit", property(lambda self: TINY_LIMIT))
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
            {"name": "format", "type": 3, "value": "wav"},
        ], user_id=MEMBER)
        await fake.wait_until(lambda: log.original is not None
                              and "queued" in log.original.content, seconds=30)
        record = await bot.jobs.require(1)
    # The bot is down: the service finishes, and its callback finds nobody listening.
    assert record.service_job_id is not None and not record.state.final
    await service_job_final(service, record.service_job_id)
    job = await service.store.job(record.service_job_id)
    assert job is not None and job.callback_state in ("PENDING", "FAILED")

    async with bot_factory(service) as bot:
        await fake.wait_until(lambda: log.original is not None
                              and "done" in log.original.content, seconds=60)
        record = await bot.jobs.require(1)
    assert record.state is JobState.DONE and record.thread_id is not None
    posted = fake.in_channel(record.thread_id)
    stems, summary = posted[:-1], posted[-1]
    assert [m.content.split(":")[0] for m in stems] == ["**vocals**", "**accompaniment**"]
    assert all("too large for this server's" in m.content and not m.attachments for m in stems)
    assert "your stems are ready" in summary.content
    async with aiohttp.ClientSession() as session:
        for message in stems:
            link = message.content.rsplit(" ", 1)[-1]
            async with session.get(link) as response:
                assert response.status == 200
                data = await response.read()
            channels, seconds = decoded_seconds(data, ".wav", tmp_path)
            assert channels == 2 and abs(seconds - 7.0) < 0.05

    # A third start finds nothing unfinished and posts nothing again.
    count = len(fake.messages)
    async with bot_factory(service) as bot:
        await bot.reconciled()
        assert await bot.jobs.unfinished() == []
    assert len(fake.messages) == count


async def test_a_kill_between_posting_and_recording_posts_each_stem_once(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord took the vocals message, then the bot died before SQLite recorded it."""
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        never = asyncio.Event()

        async def killed_before_recording(*args: object) -> None:
            await never.wait()

        monkeypatch.setattr(bot.jobs, "mark_delivered", killed_before_recording)
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
        ], user_id=MEMBER)
        await fake.wait_until(
            lambda: any(m.content == "**vocals**" for m in fake.messages.values()), seconds=90)
        record = await bot.jobs.require(1)
        assert record.state is JobState.UPLOADING and await bot.jobs.delivered(1) == {}

    async with bot_factory(service) as bot:
        await fake.wait_until(lambda: log.original is not None
                              and "done" in log.original.content, seconds=60)
        record = await bot.jobs.require(1)
    assert record.thread_id is not None
    posted = [m.content.split("\n")[0] for m in fake.in_channel(record.thread_id)]
    assert posted[:2] == ["**vocals**", "**accompaniment**"] and len(posted) == 3, posted
    assert "your stems are ready" in fake.in_channel(record.thread_id)[2].content

