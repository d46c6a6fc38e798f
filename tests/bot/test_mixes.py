"""The summary's buttons and `/mix` on the fake Discord, with the real service and engine:
a click is deferred, the mix is rendered by MixJob and posted in the thread once, also when
the bot restarts between the click and the post."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import aiohttp
import numpy as np

from bot.mixing import MixAsk
from separation import decode
from storage import JobRecord, JobState
from support.discord_bot import (
    BotFactory,
    Service,
    answered,
    read_bytes,
    refusal,
    start_job_service,
)
from support.fake_discord import OWNER_ID, FakeDiscord, InteractionLog, Message

MEMBER = 900_000_000_000_000_103
EPHEMERAL = 64


async def separated(fake: FakeDiscord, song: str, stems: int) -> InteractionLog:
    log = await fake.interact("separate", [
        {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": stems},
        {"name": "format", "type": 3, "value": "wav"}], user_id=MEMBER)
    await fake.wait_until(lambda: log.original is not None and "done" in log.original.content,
                          seconds=240)
    return log


def summary_of(fake: FakeDiscord, record: JobRecord) -> Message:
    assert record.thread_id is not None
    return fake.in_channel(record.thread_id)[-1]


def posted(fake: FakeDiscord, record: JobRecord, label: str) -> list[Message]:
    assert record.thread_id is not None
    return [m for m in fake.in_channel(record.thread_id) if m.content == f"**{label}**"]


def deferred(log: InteractionLog) -> None:
    """Acknowledged at once (Discord's 3 s), the answer to follow, seen by the member only."""
    assert log.callback is not None and log.callback["type"] == 5, log.callback
    assert log.callback["data"]["flags"] & EPHEMERAL


def decoded(message: Message, folder: Path, name: str) -> np.ndarray:
    (attachment,) = message.attachments
    path = folder / name
    path.write_bytes(attachment.data)
    return decode(path)


def check_waveforms(summary: Message, lanes: int) -> None:
    """The summary's picture: a PNG of 800 px by one 72 px lane per stem (6 px apart), each
    lane holding the stem's bars."""
    (picture,) = summary.attachments
    assert picture.filename == "waveforms.png" and picture.data.startswith(b"\x89PNG\r\n")
    width, height = struct.unpack(">II", picture.data[16:24])
    assert (width, height) == (800, lanes * 78 - 6)
    raw = zlib.decompress(picture.data[41:-16])  # the one IDAT chunk, without its CRC
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * 3)[:, 1:]
    for lane in range(lanes):
        drawn = rows[lane * 78:lane * 78 + 72] != 255
        assert drawn.mean() > 0.02, lane  # bars, not an empty lane


async def test_buttons_and_mix_post_each_mix_once(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    tmp_path: Path,
) -> None:
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        await separated(fake, song, 4)
        record = await bot.jobs.require(1)
        summary = summary_of(fake, record)
        check_waveforms(summary, lanes=4)
        assert "top to bottom: vocals, drums, bass, other" in summary.content
        buttons = fake.buttons(summary)
        assert [b["label"] for b in buttons] == ["Open player", "Instrumental", "Drumless",
                                                 "A cappella", "MIDI"]
        player = buttons[0]
        assert player["style"] == 5 and "/player/" in player["url"]  # a link button
        async with aiohttp.ClientSession() as client, client.get(player["url"]) as page:
            assert page.status == 200 and "text/html" in page.content_type

        pressed = await fake.press(summary, "Instrumental", user_id=MEMBER)
        deferred(pressed)
        await fake.wait_until(lambda: bool(pressed.followups), seconds=60)
        assert pressed.followups == [f"the Instrumental mix of job #1 is in <#{record.thread_id}>."]
        (mix,) = posted(fake, record, "Instrumental mix")
        assert mix.attachments[0].filename == "demo-mix - Instrumental mix.wav"

        again = await fake.press(summary, "Instrumental", user_id=MEMBER)
        await fake.wait_until(lambda: bool(again.followups), seconds=30)
        assert "already in" in again.followups[0]
        assert len(posted(fake, record, "Instrumental mix")) == 1

        typed = await fake.interact("mix", [{"name": "job", "type": 4, "value": 1},
                                            {"name": "preset", "type": 3,
                                             "value": "drumless"}], user_id=MEMBER)
        await fake.wait_until(lambda: bool(typed.followups), seconds=60)
        deferred(typed)
        assert len(posted(fake, record, "Drumless mix")) == 1
        # for practice: slower and lower, its own post, its own name
        practice = "Drumless mix · 80 % speed · \u22122 semitones"
        typed = await fake.interact("mix", [{"name": "job", "type": 4, "value": 1},
                                            {"name": "preset", "type": 3, "value": "drumless"},
                                            {"name": "speed", "type": 4, "value": 80},
                                            {"name": "semitones", "type": 4, "value": -2}],
                                    user_id=MEMBER)
        await fake.wait_until(lambda: bool(typed.followups), seconds=120)
        assert typed.followups == [f"the {practice} of job #1 is in <#{record.thread_id}>."]
        (slow,) = posted(fake, record, practice)
        assert slow.attachments[0].filename == f"demo-mix - {practice}.wav"
        assert len(posted(fake, record, "Drumless mix")) == 1  # the plain one stays one

        # MIDI: the pitched stems (4 stems: vocals, bass) in one message, once
        for attempt in range(2):
            midi = await fake.press(summary, "MIDI", user_id=MEMBER)
            deferred(midi)
            await fake.wait_until(lambda m=midi: bool(m.followups), seconds=120)
            said = "are already in" if attempt else "are in"
            assert midi.followups == [f"the MIDI files of job #1 {said} <#{record.thread_id}>."]
        (notes,) = [m for m in fake.in_channel(record.thread_id)
                    if m.content.startswith("**MIDI** (vocals, bass)")]
        assert [a.filename for a in notes.attachments] == ["demo-mix - vocals.mid",
                                                           "demo-mix - bass.mid"]
        assert all(a.data.startswith(b"MThd") for a in notes.attachments)

        history = await fake.interact("jobs", [{"name": "history", "type": 1, "options": []}],
                                      user_id=OWNER_ID)
        await answered(fake, history)
        assert ("\n  mixes: Drumless, Drumless · 80 % speed · \u22122 semitones, Instrumental"
                in refusal(history))

    # the instrumental is the sum of the posted drums, bass and other (16-bit wav each)
    stems = {s: decoded(posted(fake, record, s)[0], tmp_path, f"{s}.wav")
             for s in ("drums", "bass", "other")}
    instrumental = decoded(mix, tmp_path, "instrumental.wav")
    np.testing.assert_allclose(instrumental, sum(stems.values()), atol=2e-4)
    assert record.service_job_id is not None
    mixes = await service.store.mixes_of(record.service_job_id)
    # MIDI files are recorded as the job's derived files too (deleted with it)
    assert sorted(m.name for m in mixes) == ["drumless", "drumless-80pct-minus2",
                                             "instrumental", "midi-bass", "midi-vocals"]


async def test_a_click_survives_a_restart_before_its_post(
    fake: FakeDiscord, bot_factory: BotFactory, demo_wav: Path, tmp_path: Path,
) -> None:
    service = await start_job_service(tmp_path / "service")
    port = int(service.url.rsplit(":", 1)[1])
    song = fake.serve("demo-mix.wav", read_bytes(demo_wav), "audio/wav")
    try:
        async with bot_factory(service) as bot:
            await separated(fake, song, 2)
            record = await bot.jobs.require(1)
            summary = summary_of(fake, record)
            check_waveforms(summary, lanes=2)
            assert [b["label"] for b in fake.buttons(summary)] == [
                "Open player", "Instrumental", "A cappella", "MIDI"]
            await service.running.stop()  # the click comes; its post cannot be made now
            for button in ("A cappella", "MIDI"):
                pressed = await fake.press(summary, button, user_id=MEMBER)
                deferred(pressed)
                await fake.wait_until(lambda p=pressed: bool(p.followups), seconds=30)
                assert "posted when the bot can reach the service" in pressed.followups[0]
        assert posted(fake, record, "A cappella mix") == []

        def midi() -> list[Message]:
            assert record.thread_id is not None
            return [m for m in fake.in_channel(record.thread_id)
                    if m.content.startswith("**MIDI** (vocals)")]  # 2 stems: the voice

        restarted = await start_job_service(tmp_path / "service", port=port)
        service.running = restarted.running
        async with bot_factory(service) as bot:
            # the ask recorded before the stop is finished at the start
            await fake.wait_until(lambda: bool(posted(fake, record, "A cappella mix")),
                                  seconds=60)
            await fake.wait_until(lambda: bool(midi()), seconds=60)
            # the old summary's buttons still work: they are persistent
            pressed = await fake.press(summary, "Instrumental", user_id=MEMBER)
            await fake.wait_until(lambda: bool(pressed.followups), seconds=60)
            assert (await bot.jobs.require(1)).state is JobState.DONE
        assert len(posted(fake, record, "A cappella mix")) == 1
        assert len(posted(fake, record, "Instrumental mix")) == 1
        assert len(midi()) == 1
    finally:
        await service.running.stop()


def test_a_recorded_ask_reads_back_as_itself() -> None:
    for ask in (MixAsk("drumless"), MixAsk("acapella", 75), MixAsk("instrumental", 100, 3),
                MixAsk("drumless", 150, -12)):
        assert MixAsk.parse(ask.key) == ask
    assert MixAsk("acapella", 75, 1).label == "A cappella mix · 75 % speed · +1 semitone"
    assert MixAsk.parse("nightcore") is None and MixAsk.parse("drumless-80pct-minus") is None
