"""The bot submits exactly the file it checked: it uploads the bytes it downloaded and decoded
to its repository and submits them as a `source` input, never the member's link again."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from test_refusals import MEMBER, separate

from separation import OutputFormat, encode
from separation.dsp import Float
from storage import JobState, NewJob
from support.discord_bot import BotFactory, Service, decoded_seconds, read_bytes, settled
from support.fake_discord import GUILD_ID, FakeDiscord

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


async def repository_file(service: Service, path: str) -> tuple[int, bytes]:
    """GET a file of the bot's repository over HTTP, as the service serves it."""
    auth = {"Authorization": aiohttp.encode_basic_auth(service.secret_id, service.secret_key)}
    async with aiohttp.ClientSession() as session, session.get(
        f"{service.url}/content/{service.content_id}/{path}", headers=auth
    ) as answer:
        return answer.status, await answer.read()


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
    # A refused file is never offered to the service.
    assert (await repository_file(service, "inputs/1/lie.flac"))[0] == 404
    assert await service.store.jobs_by_custom_id(service.secret_id, record.custom_id) == ([], 0)


async def test_the_service_separates_the_bytes_the_bot_checked(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    demo_mix: Float, tmp_path: Path,
) -> None:
    """The link serves the 7 s song once, then a 3 s one: the stems are 7 s long."""
    first = read_bytes(demo_wav)
    other = encode(tmp_path / "other.wav", demo_mix[:, :3 * RATE], OutputFormat.WAV)
    song = fake.serve("demo-mix.wav", first, "audio/wav", later=read_bytes(other))
    async with bot_factory(service) as bot:
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
            {"name": "format", "type": 3, "value": "wav"},
        ], user_id=MEMBER)
        await settled(fake, log, "done", "failed")
        record = await bot.jobs.require(1)
    assert record.state is JobState.DONE, record.error
    assert fake.downloads["demo-mix.wav"] == 1
    job = await service.store.job(record.service_job_id or "")
    assert job is not None
    (source,) = job.inputs
    assert (source.url, source.content_id, source.path) == (
        "", service.content_id, "inputs/1/demo-mix.wav")
    assert (await repository_file(service, source.path))[0] == 404  # removed once it ended
    assert record.thread_id is not None
    for message in [m for m in fake.in_channel(record.thread_id)
                    if m.attachments and m.attachments[0].filename != "waveforms.png"]:
        channels, seconds = decoded_seconds(message.attachments[0].data, ".wav", tmp_path)
        assert channels == 2 and abs(seconds - 7.0) < 0.05


@pytest.mark.parametrize("stopped", ["before CreateJob", "before its answer"])
async def test_a_restart_during_submission_submits_the_upload_once(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    monkeypatch: pytest.MonkeyPatch, stopped: str,
) -> None:
    """The bot stops after uploading: the next start submits the upload, or finds the job
    its CreateJob made, and the member gets the stems of one job."""
    first = read_bytes(demo_wav)
    song = fake.serve("demo-mix.wav", first, "audio/wav", later=b"not the checked file")
    async with bot_factory(service) as bot:
        reached, never = asyncio.Event(), asyncio.Event()
        real_create = bot.api.create_job

        async def stopped_there(*args: Any, **kwargs: Any) -> Any:
            if stopped == "before its answer":
                await real_create(*args, **kwargs)
            reached.set()
            await never.wait()

        monkeypatch.setattr(bot.api, "create_job", stopped_there)
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
            {"name": "format", "type": 3, "value": "wav"},
        ], user_id=MEMBER)
        await asyncio.wait_for(reached.wait(), 60)
        record = await bot.jobs.require(1)
        assert record.service_job_id is None
    assert await repository_file(service, "inputs/1/demo-mix.wav") == (200, first)

    async with bot_factory(service) as bot:
        await settled(fake, log, "done", "failed")
        record = await bot.jobs.require(1)
        jobs = await bot.api.list_jobs(record.custom_id)
    assert record.state is JobState.DONE, record.error
    assert [job.id for job in jobs] == [record.service_job_id]
    assert fake.downloads["demo-mix.wav"] == 1
    assert record.thread_id is not None
    posted = [m.content.split("\n")[0] for m in fake.in_channel(record.thread_id)]
    assert posted[:2] == ["**vocals**", "**accompaniment**"] and len(posted) == 3, posted


async def test_a_start_leaves_its_own_submissions_alone(
    service: Service, bot_factory: BotFactory,
) -> None:
    """A /separate of this run that is still checking its input sends its own CreateJob;
    following it from the start's reconciliation as well could submit it twice."""
    async with bot_factory(service) as bot:
        record = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, "https://x/a.wav", "a", 2,
                                              "mp3"))
        assert await bot.tracker.reconcile() == 0
        assert (await bot.jobs.require(record.id)).state is JobState.DOWNLOADING
