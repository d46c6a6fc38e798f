"""The bot's own pre-check on page links: the same guarded resolver as the service, then the
checked file is what it submits."""

from __future__ import annotations

import json
from pathlib import Path

from test_refusals import separate

from service.player import title_of
from storage import JobState
from support.discord_bot import (
    BotFactory,
    Service,
    answered,
    read_bytes,
    refusal,
    settled,
    titled_page,
)
from support.fake_discord import OWNER_ID, FakeDiscord


async def test_a_page_link_is_checked_and_its_audio_submitted(
        fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    page = fake.serve("song.html", (
        '<html><head><meta property="og:title" content="Demo tune">'
        f'<meta property="og:audio" content="{song}"></head></html>').encode(), "text/html")
    async with bot_factory(service) as bot:
        log = await separate(fake, page)
        await settled(fake, log, "queued", "separating", "done", "failed")
        record = await bot.jobs.require(1)
        assert record.state is not JobState.FAILED, record.error
        assert record.service_job_id is not None
    assert fake.downloads["song.html"] >= 1 and fake.downloads["demo.wav"] == 1


async def test_a_page_link_over_the_limit_is_refused_by_its_metadata(
        fake: FakeDiscord, bot_factory: BotFactory) -> None:
    data = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Long one",
            "contentUrl": fake.serve("long.wav", b"RIFF", "audio/wav"),
            "duration": "PT2H0M0S", "uploadDate": "2020-01-01", "thumbnailUrl": "x.jpg"}
    page = fake.serve("long.html", (
        '<html><head><script type="application/ld+json">'
        f"{json.dumps(data)}</script></head></html>").encode(), "text/html")
    async with bot_factory(None) as bot:
        log = await separate(fake, page)
        text = await settled(fake, log, "failed")
        assert "the track is 2:00:00 long; the limit is" in text
        assert (await bot.jobs.require(1)).service_job_id is None
    assert fake.downloads.get("long.wav", 0) == 0


async def test_a_page_links_title_names_the_thread_summary_and_history(
        fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path) -> None:
    page = titled_page(fake, fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav"))
    async with bot_factory(service) as bot:
        log = await separate(fake, page)
        text = await settled(fake, log, "done", "failed")
        assert "✅ done" in text and "**The Demos – Demo tune** → 2 stems" in text
        record = await bot.jobs.require(1)
        assert record.title == "The Demos – Demo tune"
        assert record.thread_id is not None
        # opened before the check as "stems: song", renamed once the page was read
        assert fake.threads[record.thread_id]["name"] == "The Demos – Demo tune"
        posted = fake.in_channel(record.thread_id)
        assert {a.filename for m in posted for a in m.attachments} >= {
            "The Demos - Demo tune - vocals.mp3", "The Demos - Demo tune - accompaniment.mp3"}
        assert any(m.content.startswith("✅ **The Demos – Demo tune** → 2 stems")
                   for m in posted)  # the summary
        history = await fake.interact("jobs", [{"name": "history", "type": 1, "options": []}],
                                      user_id=OWNER_ID)
        await answered(fake, history)
        assert "The Demos – Demo tune · <http" in refusal(history)


async def test_a_song_shared_again_by_another_link_is_served_from_the_cache(
        fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path) -> None:
    """The bot submits the bytes it checked; the same song's bytes again are a cache hit at the
    service (known by digest), and the job carries the page's title for the service's pages."""
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    first, again = titled_page(fake, song), titled_page(fake, song, "song.html?t=42")
    async with bot_factory(service) as bot:
        for url in (first, again):
            log = await separate(fake, url)
            assert "✅ done" in await settled(fake, log, "done", "failed")
        jobs = []
        for number in (1, 2):
            record = await bot.jobs.require(number)
            assert record.service_job_id is not None
            job = await service.store.job(record.service_job_id)
            assert job is not None
            jobs.append(job)
    first_job, repeat = jobs
    assert not any(r.from_cache for r in first_job.outputs[0].results)
    assert all(r.from_cache for r in repeat.outputs[0].results)
    assert repeat.inputs[0].track == {"site": "", "id": "", "title": "The Demos – Demo tune",
                                      "uploader": "", "page": again}
    assert repeat.inputs[0].path == "inputs/2/The Demos - Demo tune"  # not ".html"
    assert title_of(repeat) == "The Demos – Demo tune"
