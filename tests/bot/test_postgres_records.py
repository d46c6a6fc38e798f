"""BOT_DATABASE_URL: the bot's records live in PostgreSQL, so a bot on a fresh host goes on
where the last one stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage import JobState, NewJob
from support.discord_bot import answered, bot_settings, refusal, running_bot
from support.fake_discord import GUILD_ID, OWNER_ID, FakeDiscord

MEMBER = 900_000_000_000_000_131


async def test_a_bot_on_an_empty_host_reads_the_last_ones_records(
    fake: FakeDiscord, tmp_path: Path, pg_url: str,
) -> None:
    first_host, second_host = tmp_path / "host-1", tmp_path / "host-2"
    async with running_bot(fake, bot_settings(first_host, None, database_url=pg_url)) as bot:
        log = await fake.interact("jobs", [{"name": "limits", "type": 1, "options": [
            {"name": "daily_quota", "type": 4, "value": 3}]}], user_id=OWNER_ID)
        await answered(fake, log)
        assert "3 per 24 h" in refusal(log)
        record = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, "https://x/Song.mp3", "Song",
                                              4, "flac"))
        await bot.jobs.finish(record.id, JobState.FAILED, "the service said no")

    async with running_bot(fake, bot_settings(second_host, None, database_url=pg_url)) as bot:
        assert (await bot.limits.get(GUILD_ID)).daily_quota == 3
        status = await fake.interact("job", [{"name": "status", "type": 1, "options": [
            {"name": "id", "type": 4, "value": record.id}]}], user_id=MEMBER)
        await answered(fake, status)
        assert "❌ failed: the service said no" in refusal(status)
    # Neither host wrote a database file: the records are all in PostgreSQL.
    assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("*.sqlite3*")))
