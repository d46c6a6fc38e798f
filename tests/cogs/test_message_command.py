"""Apps → Separate stems on a member's message: its audio attachment or its link goes the
way of /separate (same checks, limits and delivery), with the thread on that message."""

from __future__ import annotations

from pathlib import Path

from cogs.separate import MENU
from storage import JobState
from support.discord_bot import (
    BotFactory,
    Service,
    answered,
    read_bytes,
    refusal,
    running_job,
    settled,
    titled_page,
)
from support.fake_discord import CHANNEL_ID, GUILD_ID, Attachment, FakeDiscord

MEMBER = 900_000_000_000_000_105


async def test_a_messages_attachment_is_separated_in_a_thread_on_it(
        fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path) -> None:
    posted = fake.add_message(CHANNEL_ID, "our demo, any good?", [
        Attachment("Demo Mix.wav", read_bytes(demo_wav), "audio/wav")], author_id=MEMBER)
    async with bot_factory(service) as bot:
        asked = await fake.message_command(MENU, posted, user_id=MEMBER)
        await answered(fake, asked)
        assert "Separate Demo Mix.wav: choose the stems" in refusal(asked)  # ephemeral
        await fake.choose(asked, "Stems", "4", user_id=MEMBER)
        await fake.choose(asked, "Format (mp3)", "flac", user_id=MEMBER)
        started = await fake.click(asked, "Separate", user_id=MEMBER)
        assert started.callback is not None and started.callback["type"] == 5  # public reply
        text = await settled(fake, started, "done", "failed")
        assert "✅ done: 4 stems delivered" in text, text
        record = await bot.jobs.require(1)
        assert (record.stems, record.format, record.user_id) == (4, "flac", MEMBER)
        assert record.track_name == "Demo Mix" and "/attachments/" in record.input_url
        # the thread is on the member's message, not on the bot's reply
        assert record.thread_id == posted.id and posted.id in fake.threads
        files = [a.filename for m in fake.in_channel(posted.id) for a in m.attachments]
        assert "Demo Mix - drums.flac" in files
        assert asked.original is not None and "started" in asked.original.content


async def test_a_messages_link_is_checked_and_its_thread_named_after_the_page(
        fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path) -> None:
    page = titled_page(fake, fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav"))
    posted = fake.add_message(CHANNEL_ID, f"this one (<{page}>)!", author_id=MEMBER)
    async with bot_factory(service) as bot:
        asked = await fake.message_command(MENU, posted, user_id=MEMBER)
        await answered(fake, asked)
        await fake.choose(asked, "Stems", "2", user_id=MEMBER)
        started = await fake.click(asked, "Separate", user_id=MEMBER)
        await settled(fake, started, "queued", "separating", "done", "failed")
        record = await bot.jobs.require(1)
        assert record.state is not JobState.FAILED, record.error
        assert record.input_url == page and record.format == "mp3"  # the default format
        assert record.title == "The Demos – Demo tune"
        assert fake.threads[posted.id]["name"] == "The Demos – Demo tune"


async def test_refusals_are_ephemeral_and_say_why(
        fake: FakeDiscord, bot_factory: BotFactory) -> None:
    plain = fake.add_message(CHANNEL_ID, "no song here", author_id=MEMBER)
    picture = fake.add_message(CHANNEL_ID, "", [Attachment("cat.png", b"\x89PNG", "image/png")],
                               author_id=MEMBER)
    song = fake.add_message(CHANNEL_ID, "https://example.org/song.mp3", author_id=MEMBER)
    async with bot_factory(None) as bot:
        for message, words in ((plain, "that message has no audio file and no link"),
                               (picture, "cat.png is not an audio file (image/png).")):
            asked = await fake.message_command(MENU, message, user_id=MEMBER)
            await answered(fake, asked)
            assert words in refusal(asked)
        # Separate before choosing the stems
        asked = await fake.message_command(MENU, song, user_id=MEMBER)
        await answered(fake, asked)
        early = await fake.click(asked, "Separate", user_id=MEMBER)
        assert refusal(early) == "choose how many stems first."
        # /separate's limits: checked when asked, and again when started
        await bot.limits.set(GUILD_ID, max_concurrent=1)
        await fake.choose(asked, "Stems", "2", user_id=MEMBER)
        await running_job(bot, GUILD_ID, MEMBER)
        late = await fake.click(asked, "Separate", user_id=MEMBER)
        assert refusal(late) == "you have 1 job running; try again when one finishes."
        again = await fake.message_command(MENU, song, user_id=MEMBER)
        await answered(fake, again)
        assert refusal(again) == "you have 1 job running; try again when one finishes."
        assert [r.id for r in await bot.jobs.recent_in_guild(GUILD_ID)] == [1]  # none made
