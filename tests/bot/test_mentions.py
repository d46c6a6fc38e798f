"""Text a member controls (a link, a file name, an error quoting them) pings no one and
reads as text: every message allows no @everyone/@here or role mention, and what the member
wrote is shown with its Markdown and mentions escaped (issue 28)."""

from __future__ import annotations

from test_refusals import MEMBER, finished, separate

from bot.messages import plain, shown_link
from storage import JobState, NewJob
from support.discord_bot import BotFactory, answered, mass_mentions, refusal
from support.fake_discord import CHANNEL_ID, GUILD_ID, OWNER_ID, FakeDiscord

HOSTILE = "@everyone <@&123> @here"
HISTORY = [{"name": "history", "type": 1, "options": []}]


def assert_no_live_mentions(text: str) -> None:
    """No mention syntax is left in `text`, yet it reads the same once zero-width spaces go."""
    assert "@everyone" not in text and "@here" not in text and "<@&" not in text, text
    assert HOSTILE in text.replace("\u200b", ""), text


async def test_an_error_quoting_mentions_pings_no_one(fake: FakeDiscord,
                                                      bot_factory: BotFactory) -> None:
    """A link that redirects to an ftp:// address naming @everyone: the refusal quotes it in
    the status reply and in the thread."""
    link = fake.redirect("song.mp3", f"ftp://x/{HOSTILE}")
    async with bot_factory(None) as bot:
        log = await separate(fake, link)
        status = await finished(fake, log, "failed")
        record = await bot.jobs.require(1)
        thread_id = record.thread_id
        assert thread_id is not None
        await fake.wait_until(lambda: any("failed" in m.content
                                           for m in fake.in_channel(thread_id)), seconds=60)
    (failure,) = fake.in_channel(thread_id)
    assert "only http and https URLs can be fetched" in status
    assert_no_live_mentions(status)
    assert_no_live_mentions(failure.content)
    # The deferral's edits and the thread's post, at least; none may ping anyone.
    assert len(fake.payloads) >= 3
    assert mass_mentions(fake) == []
    assert all(not p["allowed_mentions"].get("users") for p in fake.payloads)


async def test_markdown_in_a_title_is_shown_escaped(fake: FakeDiscord,
                                                    bot_factory: BotFactory) -> None:
    """A file named with Markdown: its track name is in bold in the status, as plain text."""
    url = fake.serve("upload.wav", b"\x00garbage" * 500, "audio/wav")
    song = {"id": "77", "filename": "My **bold** _x_ song.wav", "size": 4000, "url": url,
            "proxy_url": url, "content_type": "audio/wav"}
    pdf = {"id": "78", "filename": "**x** @everyone.pdf", "size": 10, "url": url,
           "proxy_url": url, "content_type": "application/pdf"}
    async with bot_factory(None) as bot:
        log = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 2}, {"name": "file", "type": 11, "value": "77"},
        ], user_id=MEMBER, resolved={"attachments": {"77": song}})
        status = await finished(fake, log, "failed")
        record = await bot.jobs.require(1)
        refused = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 2}, {"name": "file", "type": 11, "value": "78"},
        ], user_id=MEMBER, resolved={"attachments": {"78": pdf}})
        await answered(fake, refused)
    assert record.track_name == "My _bold_ _x_ song"
    assert status.startswith("**My \\_bold\\_ \\_x\\_ song** → 2 stems"), status
    assert refusal(refused) == (
        "\\*\\*x\\*\\* @\u200beveryone.pdf is not an audio file (application/pdf).")
    assert mass_mentions(fake) == []


async def test_history_shows_a_members_link_and_error_as_text(fake: FakeDiscord,
                                                              bot_factory: BotFactory) -> None:
    """The link stays one clickable <link>; the error and a bad `since` are escaped."""
    link = "https://example.com/a b>**c** @everyone.mp3"
    async with bot_factory(None) as bot:
        record = await bot.jobs.create(NewJob(GUILD_ID, CHANNEL_ID, MEMBER, link, "a", 2,
                                              "mp3"))
        await bot.jobs.finish(record.id, JobState.FAILED, f"could not download (**x** {HOSTILE})")
        log = await fake.interact("jobs", HISTORY, user_id=OWNER_ID)
        await answered(fake, log)
        since = await fake.interact("jobs", [{**HISTORY[0], "options": [
            {"name": "since", "type": 3, "value": "**1d** @here"}]}], user_id=OWNER_ID)
        await answered(fake, since)
    text = refusal(log)
    assert "\n  <https://example.com/a%20b%3E**c**%20@everyone.mp3>\n" in text, text
    assert "\n  error: could not download (\\*\\*x\\*\\* @\u200beveryone" in text, text
    assert_no_live_mentions(text.split("error: ", 1)[1])
    assert refusal(since).startswith("\\*\\*1d\\*\\* @\u200bhere is not a time")
    assert mass_mentions(fake) == []


def test_escaping_keeps_links_whole() -> None:
    """escape_markdown leaves http(s) links alone, so a link quoted in an error still works."""
    assert plain("see https://x.org/a_b*c for _y_") == "see https://x.org/a_b*c for \\_y\\_"
    assert shown_link("https://x.org/a_b c>d", 150) == "<https://x.org/a_b%20c%3Ed>"
