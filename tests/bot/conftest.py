"""Fixtures for the bot tests: the fake Discord, the real job service, a bot factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_discord import FakeDiscord
from harness import BotContext, BotFactory, Service, bot_settings, running_bot, start_job_service


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with fake.installed():
            yield fake


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    started = await start_job_service(tmp_path / "service")
    yield started
    await started.running.stop()


@pytest.fixture
def bot_factory(fake: FakeDiscord, tmp_path: Path) -> BotFactory:
    def make(service: Service | None, **changes: object) -> BotContext:
        return running_bot(fake, bot_settings(tmp_path, service, **changes))

    return make
