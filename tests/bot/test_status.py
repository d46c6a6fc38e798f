"""The reply's status edits: state changes at once, progress at most every few seconds."""

from __future__ import annotations

from storage import JobState, NewJob
from support.discord_bot import BotFactory
from support.fake_discord import CHANNEL_ID, GUILD_ID, FakeDiscord


async def test_progress_edits_are_throttled(fake: FakeDiscord, bot_factory: BotFactory) -> None:
    async with bot_factory(None) as bot:
        reply = fake.add_message(CHANNEL_ID)
        record = await bot.jobs.create(NewJob(GUILD_ID, CHANNEL_ID, 1, "https://x/a.mp3", "a",
                                              2, "mp3"))
        record = await bot.jobs.update(record.id, message_id=reply.id, state=JobState.QUEUED)
        await bot.statuses.show(record)
        record = await bot.jobs.update(record.id, state=JobState.SEPARATING, progress=10)
        await bot.statuses.show(record, progress_only=False)  # a new state: shown at once
        for percent in (20, 30, 40):
            record = await bot.jobs.update(record.id, progress=percent)
            await bot.statuses.show(record, progress_only=True)  # within 5 s: held back
        record = await bot.jobs.update(record.id, state=JobState.UPLOADING)
        await bot.statuses.show(record)
        lines = [edit.splitlines()[1] for edit in reply.edits]
        assert lines == ["⏳ queued", "🎛️ separating… 10%", "⏫ uploading the stems…"]
