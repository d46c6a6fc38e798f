"""The bot checks a member's file by decoding it, not by trusting its header."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from fake_discord import GUILD_ID, FakeDiscord, InteractionLog
from harness import BotFactory, Service
from test_refusals import separate

from storage import JobState

RATE = 44_100


def flac_declaring_one_second(seconds: int) -> bytes:
    """A FLAC holding `seconds` of a tone whose STREAMINFO says it holds 1 s."""
    out = io.BytesIO()
    tone = (np.sin(2 * np.pi * 440 * np.arange(seconds * RATE) / RATE) * 8000).astype(np.int16)
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=RATE, layout="mono")
        for start in range(0, len(tone), 4096):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 4096], format="s16",
                                               layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = bytearray(out.getvalue())
    # "fLaC", a 4-byte block header, then STREAMINFO; total samples are its bits 108-143.
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    data[21] &= 0xF0
    data[22:26] = RATE.to_bytes(4, "big")
    return bytes(data)


async def settled(fake: FakeDiscord, log: InteractionLog, *words: str) -> str:
    """The reply once it shows one of `words`: a wrong outcome fails at once, not on timeout."""
    await fake.wait_until(lambda: log.original is not None and any(
        word in log.original.content for word in words), seconds=120)
    assert log.original is not None
    return log.original.content


async def test_a_flac_whose_header_lies_about_its_length_is_refused(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, tmp_path: Path,
) -> None:
    data = flac_declaring_one_second(30)
    (tmp_path / "lie.flac").write_bytes(data)
    with av.open(str(tmp_path / "lie.flac")) as container:
        assert container.duration is not None and abs(container.duration / 1e6 - 1) < 0.01
    song = fake.serve("lie.flac", data, "audio/flac")
    async with bot_factory(service) as bot:
        await bot.limits.set(GUILD_ID, max_seconds=5)
        log = await separate(fake, song)
        text = await settled(fake, log, "failed", "queued")
        assert "the track is over this server's 0:05 limit" in text
        record = await bot.jobs.require(1)
        assert record.state is JobState.FAILED and record.service_job_id is None
    assert await service.store.jobs_by_custom_id(service.secret_id, record.custom_id) == []
