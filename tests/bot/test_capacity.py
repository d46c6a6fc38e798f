"""The bot against a service at its limits: a busy service, and ListJobs past one page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from test_refusals import MEMBER, finished, separate

from bot.jobapi import JobApi
from separation.presets import StemPreset
from storage import JobState, NewJob
from support.discord_bot import BotFactory, read_bytes, start_job_service
from support.fake_discord import GUILD_ID, FakeDiscord
from wire.jobs import InputSpec


async def test_a_service_with_too_many_jobs_is_busy(fake: FakeDiscord, bot_factory: BotFactory,
                                                    tmp_path: Path, demo_wav: Path) -> None:
    """The service's 429 TOO_MANY_JOBS reads "busy, try again later", not an outage."""
    service = await start_job_service(tmp_path / "service", max_open_jobs=0)
    try:
        song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
        async with bot_factory(service) as bot:
            text = await finished(fake, await separate(fake, song), "failed")
            assert "the separation service is busy, try again later" in text
            record = await bot.jobs.require(1)
            assert record.state is JobState.FAILED and record.service_job_id is None
    finally:
        await service.running.stop()


async def test_a_lost_job_is_found_past_the_first_page(fake: FakeDiscord, tmp_path: Path,
                                                       bot_factory: BotFactory) -> None:
    """Killed between CreateJob and saving its answer, with 101 older jobs under the same
    customId (an earlier bot database's): the restarted bot follows the newest one."""
    service = await start_job_service(tmp_path / "service", max_open_jobs=1000)
    try:
        gone = service.url + "/no-such-file.wav"
        async with aiohttp.ClientSession() as session:
            api = JobApi(session, service.url + "/release/job", service.secret_id,
                         service.secret_key)
            custom, source = "stembot-discord-1", InputSpec(url=gone)
            for _ in range(101):
                await api.create_job(source, StemPreset.TWO_STEMS, custom_id=custom, callback="",
                                     timeout_s=60)
            async with bot_factory(service) as bot:
                record = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, gone, "gone", 2,
                                                      "mp3"), JobState.QUEUED)
                assert record.custom_id == custom
            lost = await api.create_job(source, StemPreset.TWO_STEMS, custom_id=custom, callback="",
                                        timeout_s=60)
            assert len(await api.list_jobs(custom)) == 102
            async with bot_factory(service) as bot:
                async with asyncio.timeout(30):  # reconciled once the gateway is ready
                    while not (found := await bot.jobs.require(record.id)).state.final:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
        assert found.service_job_id == lost.id
        assert found.state is JobState.FAILED and "HTTP 404" in (found.error or "")
    finally:
        await service.running.stop()
