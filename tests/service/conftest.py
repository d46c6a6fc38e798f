"""Fixtures for the job service: real servers on loopback, real SQLite, the real model."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from service_harness import Origin, Running, serving, start_origin

from separation import OutputFormat, encode, synth
from tests.infra.seaweed import SeaweedFS


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
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """A service with two keys, on a fresh data folder; STEMBOT_TEST_DATABASE=postgresql runs
    every test of this fixture on a fresh PostgreSQL database instead of SQLite."""
    backend = os.environ.get("STEMBOT_TEST_DATABASE", "sqlite")
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"STEMBOT_TEST_DATABASE must be sqlite or postgresql, not {backend!r}")
    database = request.getfixturevalue("pg_url") if backend == "postgresql" else ""
    async with serving(tmp_path / "data", database=database) as started:
        yield started


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session; each test takes a bucket of its own."""
    store = SeaweedFS()
    store.start()
    yield store
    store.stop()


@pytest.fixture
def s3_storage(seaweed: SeaweedFS) -> dict[str, Any]:
    """Service settings for a fresh bucket on the session's SeaweedFS (`serving(storage=)`)."""
    bucket = f"test-{secrets.token_hex(6)}"
    seaweed.create_bucket(bucket)
    return seaweed.settings(f"s3://{bucket}")
