"""`stembot up`: the job service alone without a token, the bot beside it with one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_discord import FakeDiscord
from harness import TEST_LIMITS, read_bytes

from bot.launch import run_up
from bot.settings import BotSettings
from service.settings import ServiceSettings

MEMBER = 900_000_000_000_000_104


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def service_url(caplog: pytest.LogCaptureFixture) -> str:
    for _ in range(100):
        for record in caplog.records:
            if record.getMessage().startswith("job service listening on "):
                return record.getMessage().rsplit(" ", 1)[-1]
        await asyncio.sleep(0.05)
    raise AssertionError("the job service did not start")


async def test_without_a_token_it_explains_and_serves_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "stembot.bot")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data")
    bot = BotSettings(token="", data_dir=tmp_path / "data")
    async with background(run_up(service, bot)):
        url = await service_url(caplog)
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as answer:
            assert answer.status == 200
    printed = capsys.readouterr().out
    assert "DISCORD_TOKEN is not set" in printed
    assert "New Application" in printed and "stembot sync --guild" in printed
    assert "scope=bot+applications.commands&permissions=309237746688" in printed


async def test_with_a_token_the_bot_uses_the_embedded_service(
    fake: FakeDiscord, tmp_path: Path, demo_wav: Path
) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data", allow_private_networks=True)
    bot = BotSettings(token="fake-token", listen_port=0, data_dir=tmp_path / "data",
                      limits=TEST_LIMITS, allow_private_networks=True)
    async with background(run_up(service, bot)):
        await fake.ready()
        log = await fake.interact("separate", [
            {"name": "url", "type": 3, "value": song}, {"name": "stems", "type": 4, "value": 2},
        ], user_id=MEMBER)
        # Queued: the embedded service took the job, with its loopback callback URL.
        await fake.wait_until(lambda: log.original is not None
                              and "queued" in log.original.content, seconds=30)
        key_file = tmp_path / "data" / "bot-key.json"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        cancel = await fake.interact("job", [{"name": "cancel", "type": 1, "options": [
            {"name": "id", "type": 4, "value": 1}]}], user_id=MEMBER)
        await fake.wait_until(lambda: bool(cancel.followups), seconds=10)
        assert cancel.followups == ["job #1 canceled."]


async def test_another_service_needs_the_keys_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The bot uploads what it checked to its key's repository, so it must know which."""
    caplog.set_level(logging.INFO, "stembot.bot")
    service = ServiceSettings(port=0, data_dir=tmp_path / "data")
    bot = BotSettings(token="fake-token", api_url="https://stems.example.org/release/job",
                      secret_id="AKID1", secret_key="secret", data_dir=tmp_path / "data")
    async with background(run_up(service, bot)):
        # The check runs right after the service logs that it listens, before any await.
        await service_url(caplog)
        printed = capsys.readouterr().out
    assert "set BOT_SECRET_ID, BOT_SECRET_KEY and BOT_CONTENT_ID" in printed
    assert "contentId `stembot keys create` printed" in printed
