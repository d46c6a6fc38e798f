"""The whole path a member sees: the real discord.py client on a fake Discord, the real job
service and engine on a short rendered clip."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from separation.fact_line import line
from storage import JobState
from support.discord_bot import BotFactory, Service, decoded_seconds, mass_mentions, read_bytes
from support.fake_discord import CHANNEL_ID, FakeDiscord, Message
from wire.signature import SIGNATURE_HEADER, callback_signature

MEMBER = 900_000_000_000_000_101
STEMS = ("vocals", "drums", "bass", "other")


def stem_messages(fake: FakeDiscord, thread_id: int) -> list[Message]:
    """The messages with an audio file: the summary's picture is not a stem."""
    return [m for m in fake.in_channel(thread_id)
            if m.attachments and m.attachments[0].filename != "waveforms.png"]


async def test_separate_delivers_stems_in_a_thread(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    tmp_path: Path,
) -> None:
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song},
            {"name": "stems", "type": 4, "value": 4},
            {"name": "format", "type": 3, "value": "mp3"},
        ], user_id=MEMBER)
        await fake.wait_until(lambda: log.original is not None
                              and "done" in log.original.content, seconds=240)
        record = await bot.jobs.require(1)
        delivered = await bot.jobs.delivered(record.id)
        assert record.service_job_id is not None
        job = await service.store.job(record.service_job_id)
        # The service's signed callback reached the listener and was accepted.
        assert job is not None and job.callback_state == "DELIVERED"
        # The same callback again (a retry, or a replay) is accepted and changes nothing.
        posted_before = len(fake.messages)
        body = json.dumps(job.wire()).encode()
        async with aiohttp.ClientSession() as session, session.post(
            bot.tracker.callback_base + record.callback_token, data=body,
            headers={SIGNATURE_HEADER: callback_signature(service.secret_key, body)},
        ) as answer:
            assert answer.status == 204
        await bot.tracker.wait(record.id)  # the follower the callback woke has ended
        assert len(fake.messages) == posted_before

    # Deferred at once, then edited through every state, in order.
    assert log.callback is not None and log.callback["type"] == 5
    assert log.original is not None and log.original.channel_id == CHANNEL_ID
    seen = [line for edit in log.original.edits for line in edit.splitlines()[1:]]
    words = ("downloading", "queued", "separating", "uploading", "done")
    assert all(any(word in line for line in seen) for word in words), seen
    order = [next(i for i, line in enumerate(seen) if word in line) for word in words]
    assert order == sorted(order), seen
    assert "4 stems delivered" in log.original.content

    # The thread hangs on the reply; one message per stem with a decodable file, then a summary.
    assert record.thread_id == log.original.id and record.thread_id in fake.threads
    posted = stem_messages(fake, record.thread_id)
    assert [m.content for m in posted] == [f"**{stem}**" for stem in STEMS]
    for stem, message in zip(STEMS, posted, strict=True):
        (attachment,) = message.attachments
        assert attachment.filename == f"demo-mix - {stem}.mp3"
        channels, seconds = decoded_seconds(attachment.data, ".mp3", tmp_path)
        assert channels == 2 and abs(seconds - 7.0) < 0.1
    summary = fake.in_channel(record.thread_id)[-1]
    assert "your stems are ready" in summary.content and f"<@{MEMBER}>" in summary.content
    # and the song's facts, as the service measured them on the stems (the demo is 120 BPM)
    (facts,) = job.wire()["outputs"][0]["smartContentResult"]["facts"]
    assert f"🎵 {line(facts)}" in summary.content.splitlines()
    assert line(facts).startswith("120 BPM · ")
    # No message may ping @everyone or a role; the summary pings its member, and only them.
    assert mass_mentions(fake) == []
    pings = [p["allowed_mentions"] for p in fake.payloads if "your stems are ready"
             in (p.get("content") or "")]
    assert pings == [{"parse": [], "users": [MEMBER]}]
    assert all(not p["allowed_mentions"].get("users") for p in fake.payloads
               if "your stems are ready" not in (p.get("content") or ""))

    # The SQLite record holds the whole story.
    assert record.state is JobState.DONE and record.service_job_id
    assert record.message_id == log.original.id and record.user_id == MEMBER
    assert (record.stems, record.format, record.input_url) == (4, "mp3", song)
    assert record.finished_at is not None and record.error is None
    assert sorted(delivered) == sorted([*STEMS, "summary"])
    assert {delivered[stem].message_id for stem in STEMS} == {m.id for m in posted}
    assert all(delivered[stem].link is None for stem in STEMS)


async def test_high_quality_asks_for_shifts_and_a_repeat_comes_from_the_cache(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
) -> None:
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    options = [{"name": "url", "type": 3, "value": song},
               {"name": "stems", "type": 4, "value": 2},
               {"name": "quality", "type": 4, "value": 2}]
    async with bot_factory(service) as bot:
        summaries = []
        for number in (1, 2):
            log = await fake.interact("separate", options, user_id=MEMBER)
            await fake.wait_until(lambda log=log: log.original is not None
                                  and "done" in log.original.content, seconds=240)
            record = await bot.jobs.require(number)
            assert record.shifts == 2 and "high quality" in log.original.content
            assert record.service_job_id is not None and record.thread_id is not None
            job = await service.store.job(record.service_job_id)
            assert job is not None and job.outputs[0].shifts == 2
            summaries.append(fake.in_channel(record.thread_id)[-1].content)
    assert "from cache" not in summaries[0]
    assert "from cache: this song was separated before" in summaries[1]
