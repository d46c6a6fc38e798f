"""Fixtures shared by every part's tests: one loaded engine, one rendered clip, a throwaway
PostgreSQL; and for the bot, cogs and stembot tests the fake Discord, the real job service and
a bot factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from separation import OutputFormat, Separator, encode, synth
from separation.dsp import Float
from support.discord_bot import (
    BotContext,
    BotFactory,
    Service,
    bot_settings,
    running_bot,
    start_job_service,
)
from support.fake_discord import FakeDiscord
from support.postgres import PostgresCluster


@pytest.fixture(scope="session")
def separator() -> Separator:
    """The real 4-stem model, loaded once for the whole run."""
    return Separator()


@pytest.fixture(scope="session")
def demo_stems() -> dict[str, Float]:
    """A 7 s clip (one model chunk) with known stems: vocals, drums, bass, other."""
    return synth.demo_clip(7.0)


@pytest.fixture(scope="session")
def demo_mix(demo_stems: dict[str, Float]) -> Float:
    mix: Float = np.sum(list(demo_stems.values()), axis=0)
    return mix


@pytest.fixture(scope="session")
def demo_wav(tmp_path_factory: pytest.TempPathFactory, demo_mix: Float) -> Path:
    """The demo mix as a 16-bit WAV file."""
    return encode(tmp_path_factory.mktemp("demo") / "demo-mix.wav", demo_mix, OutputFormat.WAV)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the run; tests take a database each."""
    cluster = PostgresCluster().init().start()
    yield cluster
    cluster.remove()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> str:
    """The URL of a new, empty database on the run's PostgreSQL server."""
    return postgres.create_database()


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
