"""A cancel racing the submission, and failures that must not leave a job downloading."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_refusals import MEMBER, finished, separate

from bot.client import StemBot
from bot.jobapi import ApiError, Job, ServiceUnreachableError
from bot.probe import Probe
from storage import JobRecord, JobState, NewJob
from support.discord_bot import BotFactory, Service, read_bytes
from support.fake_discord import GUILD_ID, FakeDiscord
from wire.enums import State

CANCEL = [{"name": "cancel", "type": 1, "options": [{"name": "id", "type": 4, "value": 1}]}]


def spy_submit(bot: StemBot, monkeypatch: pytest.MonkeyPatch,
               ) -> asyncio.Future[JobRecord | None]:
    """A future with what the submission's `tracker.submit` returned."""
    outcome: asyncio.Future[JobRecord | None] = asyncio.get_running_loop().create_future()
    real = bot.tracker.submit

    async def submit(record: JobRecord, checked: Path) -> JobRecord | None:
        try:
            result = await real(record, checked)
        except BaseException as error:
            outcome.set_exception(error)
            raise
        outcome.set_result(result)
        return result

    monkeypatch.setattr(bot.tracker, "submit", submit)
    return outcome


async def test_cancel_while_downloading_submits_nothing(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        probing, release = asyncio.Event(), asyncio.Event()
        real_checked = bot.inputs.checked

        @contextlib.asynccontextmanager
        async def slow_checked(*args: Any) -> AsyncIterator[Probe]:  # can take up to 120 s
            probing.set()
            await release.wait()
            async with real_checked(*args) as checked:
                yield checked

        monkeypatch.setattr(bot.inputs, "checked", slow_checked)
        outcome = spy_submit(bot, monkeypatch)
        log = await separate(fake, song)
        await asyncio.wait_for(probing.wait(), 30)
        cancel = await fake.interact("job", CANCEL, user_id=MEMBER)
        await fake.wait_until(lambda: bool(cancel.followups), seconds=10)
        assert cancel.followups == ["job #1 canceled before it reached the service."]
        release.set()
        assert await asyncio.wait_for(outcome, 30) is None
        record = await bot.jobs.require(1)
        assert record.state is JobState.CANCELED and record.service_job_id is None
        assert await bot.api.list_jobs(record.custom_id) == []  # nothing reached the service
        assert f"canceled: by <@{MEMBER}>" in await finished(fake, log, "canceled")


async def test_cancel_during_create_job_cancels_the_service_job(
    fake: FakeDiscord, service: Service, bot_factory: BotFactory, demo_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        real_create = bot.api.create_job

        async def create_then_cancel(*args: Any, **kwargs: Any) -> Any:
            job = await real_create(*args, **kwargs)
            # The member's /job cancel lands while CreateJob's answer is on its way.
            await bot.tracker.end(await bot.jobs.require(1), JobState.CANCELED, "by them")
            return job

        monkeypatch.setattr(bot.api, "create_job", create_then_cancel)
        outcome = spy_submit(bot, monkeypatch)
        log = await separate(fake, song)
        assert await asyncio.wait_for(outcome, 60) is None
        record = await bot.jobs.require(1)
        assert record.state is JobState.CANCELED and record.service_job_id is not None
        job = await bot.api.get_job(record.service_job_id)
        assert job.state is State.CANCELED
        assert "canceled: by them" in await finished(fake, log, "canceled")


async def test_a_malformed_redirect_is_refused_clearly(fake: FakeDiscord,
                                                       bot_factory: BotFactory) -> None:
    link = fake.redirect("song.mp3", "http://[::1/")
    async with bot_factory(None) as bot:
        log = await separate(fake, link)
        text = await finished(fake, log, "failed")
        assert "the link leads to an invalid address" in text
        assert (await bot.jobs.require(1)).state is JobState.FAILED


async def test_an_unexpected_error_ends_the_job(fake: FakeDiscord, bot_factory: BotFactory,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async with bot_factory(None) as bot:
        def broken_checked(*args: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(bot.inputs, "checked", broken_checked)
        log = await separate(fake, "https://example.com/song.mp3")
        text = await finished(fake, log, "failed")
        assert "the bot failed internally (RuntimeError: boom); please try again" in text
        assert (await bot.jobs.require(1)).state is JobState.FAILED
        # The member's concurrency slot is free again.
        assert await bot.jobs.count_active((await bot.jobs.require(1)).guild_id, MEMBER) == 0


async def test_a_passing_server_error_does_not_fail_a_followed_job(
    fake: FakeDiscord, bot_factory: BotFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 503 while the service restarts is retried; the job ends as the service says."""
    async with bot_factory(None) as bot:
        record = await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER, "https://x/a", "a", 2, "mp3"))
        await bot.jobs.update(record.id, state=JobState.QUEUED, service_job_id="svc-1")
        answers: list[Job | ApiError] = [
            ServiceUnreachableError("the separation service is unavailable (HTTP 503: )",
                                    status=503),
            Job("svc-1", State.CANCELED, record.custom_id, 0, None, None, ()),
        ]

        async def get_job(job_id: str) -> Job:
            answer = answers.pop(0)
            if isinstance(answer, ApiError):
                raise answer
            return answer

        monkeypatch.setattr(bot.api, "get_job", get_job)
        monkeypatch.setattr("bot.tracker.POLL_MIN", 0.05)
        bot.tracker.follow(record.id)
        await asyncio.wait_for(bot.tracker.wait(record.id), 30)
        assert answers == []
        assert (await bot.jobs.require(record.id)).state is JobState.CANCELED
