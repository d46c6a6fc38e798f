"""Helpers for the bot tests: start the real job service and a bot on the fake Discord."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.client import StemBot
from bot.settings import BotSettings
from separation import decode
from separation.audio import SAMPLE_RATE
from service.app import RunningService, start_service
from service.settings import ServiceSettings
from service.state import SERVICE
from service.store import Store
from storage import GuildLimits, JobState, NewJob
from support.fake_discord import FakeDiscord, InteractionLog, Json


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def decoded_seconds(data: bytes, suffix: str, folder: Path) -> tuple[int, float]:
    """Decode an attachment as the member's player would: (channels, seconds)."""
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=folder) as handle:
        Path(handle.name).write_bytes(data)
        audio = decode(Path(handle.name))
    return audio.shape[0], audio.shape[1] / SAMPLE_RATE


EPHEMERAL = 64


def refusal(log: InteractionLog) -> str:
    """The text of an ephemeral refusal sent as the interaction's response."""
    assert log.callback is not None and log.callback["type"] == 4, log.callback
    data = log.callback["data"]
    assert data["flags"] & EPHEMERAL
    return str(data["content"])


def mass_mentions(fake: FakeDiscord) -> list[Json]:
    """The message payloads the bot sent that could ping @everyone, @here or a role.

    Without `allowed_mentions` Discord parses every mention in the content; with it, only the
    kinds its `parse` names and the ids it lists.
    """
    def unsafe(payload: Json) -> bool:
        allowed = payload.get("allowed_mentions")
        return (allowed is None or bool({"everyone", "roles"} & set(allowed.get("parse", [])))
                or bool(allowed.get("roles")))

    return [payload for payload in fake.payloads if unsafe(payload)]


async def answered(fake: FakeDiscord, log: InteractionLog) -> None:
    await fake.wait_until(lambda: log.callback is not None, seconds=10)


async def settled(fake: FakeDiscord, log: InteractionLog, *words: str) -> str:
    """The reply once it shows one of `words`: a wrong outcome fails at once, not on timeout."""
    await fake.wait_until(lambda: log.original is not None and any(
        word in log.original.content for word in words), seconds=120)
    assert log.original is not None
    return log.original.content


def titled_page(fake: FakeDiscord, song: str, name: str = "song.html") -> str:
    """A page naming its track and artist (JSON-LD, read by yt-dlp's generic extractor)."""
    data = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Demo tune",
            "contentUrl": song, "duration": "PT10S", "uploadDate": "2020-01-01",
            "thumbnailUrl": song + ".jpg", "author": {"@type": "Person", "name": "The Demos"}}
    return fake.serve(name, (
        '<html><head><title>page</title><script type="application/ld+json">'
        f"{json.dumps(data)}</script></head></html>").encode(), "text/html")


async def running_job(bot: StemBot, guild_id: int, user_id: int) -> int:
    record = await bot.jobs.create(NewJob(guild_id, 1, user_id, "https://x/a", "a", 2, "mp3"))
    await bot.jobs.update(record.id, state=JobState.SEPARATING,
                          service_job_id=f"elsewhere-{record.id}")
    return record.id


# Loose limits, so that only the tests about limits meet them.
TEST_LIMITS = GuildLimits(max_concurrent=5, daily_quota=100, cooldown_seconds=0,
                          max_seconds=600, max_mib=50, max_server_jobs=50)


@dataclass
class Service:
    running: RunningService
    url: str
    secret_id: str
    secret_key: str
    content_id: str

    @property
    def store(self) -> Store:
        return self.running.runner.app[SERVICE].store


async def start_job_service(data_dir: Path, port: int = 0, **changes: object) -> Service:
    settings = ServiceSettings(port=port, data_dir=data_dir, allow_private_networks=True,
                               allow_private_callbacks=True,
                               callback_attempts=2, callback_backoff=0.2, sweep_interval=0.2,
                               ).with_changes(**changes)
    running = await start_service(settings)
    key = await running.runner.app[SERVICE].store.create_key("discord bot")
    return Service(running, running.url, key.secret_id, key.secret_key, key.default_content)


def bot_settings(tmp_path: Path, service: Service | None, **changes: object) -> BotSettings:
    settings = BotSettings(
        token="fake-token", api_url=(service.url if service else "http://127.0.0.1:9")
        + "/release/job", secret_id=service.secret_id if service else "id",
        secret_key=service.secret_key if service else "key",
        content_id=service.content_id if service else "repo", listen_port=0,
        data_dir=tmp_path / "bot", limits=TEST_LIMITS, allow_private_networks=True,
    )
    return settings.with_changes(**changes)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: BotSettings) -> AsyncIterator[StemBot]:
    """Start the bot against the fake Discord; close it on the way out."""
    bot = StemBot(settings)
    task = asyncio.create_task(bot.start(settings.token))
    try:
        await fake.ready()
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


BotContext = contextlib.AbstractAsyncContextManager[StemBot]
BotFactory = Callable[..., BotContext]
