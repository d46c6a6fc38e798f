"""`/job status` with autocomplete over the member's own jobs, and `/jobs limits`."""

from __future__ import annotations

import discord
import pytest

from storage import JobState, NewJob
from support.discord_bot import BotFactory, answered, refusal
from support.fake_discord import CHANNEL_ID, GUILD_ID, OWNER_ID, FakeDiscord

MEMBER = 900_000_000_000_000_105
OTHER = 900_000_000_000_000_106


async def test_status_autocompletes_own_jobs(fake: FakeDiscord, bot_factory: BotFactory) -> None:
    async with bot_factory(None) as bot:
        mine = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, "https://x/Song.mp3", "Song",
                                            4, "flac"))
        await bot.jobs.finish(mine.id, JobState.FAILED, "the service said no")
        await bot.jobs.create(NewJob(GUILD_ID, 1, OTHER, "https://x/b.mp3", "Other", 2, "mp3"))
        typing = await fake.interact("job", [{"name": "status", "type": 1, "options": [
            {"name": "id", "type": 4, "value": "", "focused": True}]}],
            user_id=MEMBER, autocomplete=True)
        await answered(fake, typing)
        assert typing.callback is not None and typing.callback["type"] == 8
        assert typing.callback["data"]["choices"] == [
            {"name": f"#{mine.id} Song (failed)", "value": mine.id}]

        status = await fake.interact("job", [{"name": "status", "type": 1, "options": [
            {"name": "id", "type": 4, "value": mine.id}]}], user_id=MEMBER)
        await answered(fake, status)
        text = refusal(status)
        assert "**Song** → 4 stems (vocals / drums / bass / other), flac" in text
        assert "❌ failed: the service said no" in text

        missing = await fake.interact("job", [{"name": "status", "type": 1, "options": [
            {"name": "id", "type": 4, "value": 999}]}], user_id=MEMBER)
        await answered(fake, missing)
        assert refusal(missing) == "there is no job #999 in this server."


async def test_moderators_change_limits(fake: FakeDiscord, bot_factory: BotFactory) -> None:
    async with bot_factory(None) as bot:
        log = await fake.interact("jobs", [{"name": "limits", "type": 1, "options": [
            {"name": "daily_quota", "type": 4, "value": 3},
            {"name": "max_minutes", "type": 4, "value": 5}]}], user_id=OWNER_ID)
        await answered(fake, log)
        assert refusal(log).startswith("updated limits: 5 running jobs per member, 3 per 24 h")
        limits = await bot.limits.get(GUILD_ID)
        assert (limits.daily_quota, limits.max_seconds) == (3, 300)
        log = await fake.interact("jobs", [{"name": "limits", "type": 1, "options": [
            {"name": "daily_quota", "type": 4, "value": 300}]}], user_id=MEMBER)
        await answered(fake, log)
        assert refusal(log) == "this needs the Manage Server permission."
        assert (await bot.limits.get(GUILD_ID)).daily_quota == 3


async def test_history_of_very_long_links_fits_a_message(fake: FakeDiscord,
                                                         bot_factory: BotFactory) -> None:
    """Discord refuses content over 2000 characters; long links and errors are cut."""
    url = "https://example.com/" + "a" * 3000 + ".mp3"
    async with bot_factory(None) as bot:
        # The fake refuses what Discord refuses: 400, Invalid Form Body (50035).
        with pytest.raises(discord.HTTPException) as refused:
            await bot.get_partial_messageable(CHANNEL_ID).send("x" * 2001)
        assert refused.value.status == 400 and refused.value.code == 50035

        for _ in range(7):
            record = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, url, "a", 2, "mp3"))
            await bot.jobs.finish(record.id, JobState.FAILED, "could not download " + url)
        log = await fake.interact("jobs", [{"name": "history", "type": 1, "options": []}],
                                  user_id=OWNER_ID)
        await answered(fake, log)
        first = refusal(log)
        assert len(first) <= 2000 and "page 1/2 (7 jobs)" in first
        # All five jobs of the page, each with the start of its link.
        assert all(f"**#{n}**" in first for n in (7, 6, 5, 4, 3)) and first.count("…>") == 5
        assert "https://example.com/aaa" in first and "does not fit" not in first
        assert "error: could not download https://example.com/aaa" in first
        assert url not in first
        page = await fake.click(log, "Next", user_id=OWNER_ID)
        assert page.callback is not None and page.callback["type"] == 7
        second = page.callback["data"]["content"]
        assert len(second) <= 2000 and "page 2/2" in second and "**#2**" in second
