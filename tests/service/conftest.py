"""Fixtures for the job service: real servers on loopback, real SQLite, the real model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from service_harness import Api, Origin, Running, make_settings, new_key, start_origin

from separation import OutputFormat, encode, synth
from service.app import start_service


@pytest.fixture(scope="session")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5 s rendered clip: one model chunk, so one separation is one inference."""
    mix = np.sum(list(synth.demo_clip(5.0).values()), axis=0)
    return encode(tmp_path_factory.mktemp("clip") / "clip.wav", mix, OutputFormat.WAV)


@pytest_asyncio.fixture
async def origin(short_wav: Path) -> AsyncIterator[Origin]:
    server, runner = await start_origin()
    server.files["clip.wav"] = await asyncio.to_thread(short_wav.read_bytes)
    server.files["notaudio.wav"] = b"RIFF this is not audio at all" * 100
    yield server
    await runner.cleanup()


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A service with two keys, on a fresh data folder."""
    settings = make_settings(tmp_path / "data")
    key, other = await new_key(settings, "alice"), await new_key(settings, "bob")
    service = await start_service(settings)
    async with aiohttp.ClientSession() as client:
        yield Running(service, settings, Api(client, service.url, key), other)
    await service.stop()
