"""Fixtures for the job service: real servers on loopback, real SQLite, the real model."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from browsing import chromium
from playwright.async_api import Browser
from service_harness import (
    Origin,
    Running,
    Separated,
    separated_on_two_origins,
    serving,
    start_origin,
)

from separation import OutputFormat, encode, synth
from support.seaweed import SeaweedFS


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


BACKENDS = ("sqlite-local", "postgresql-s3")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with `BOTH_BACKENDS = True` runs each `running` test on every backend pair:
    SQLite + the local folder, PostgreSQL + S3 (the dialect-test idea: one suite, all
    implementations)."""
    if "running" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_BACKENDS", False):
        metafunc.parametrize("running", BACKENDS, indirect=True)


@pytest_asyncio.fixture
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """A service with two keys, on a fresh data folder: SQLite and local files, or (the
    parameter, or STEMBOT_TEST_DATABASE=postgresql for the database alone) a fresh
    PostgreSQL database and a fresh S3 bucket."""
    backend = getattr(request, "param", None) or (
        "postgresql-local" if os.environ.get("STEMBOT_TEST_DATABASE") == "postgresql"
        else "sqlite-local")
    if os.environ.get("STEMBOT_TEST_DATABASE", "sqlite") not in ("sqlite", "postgresql"):
        raise ValueError("STEMBOT_TEST_DATABASE must be sqlite or postgresql")
    database_kind, storage_kind = backend.split("-")
    database = request.getfixturevalue("pg_url") if database_kind == "postgresql" else ""
    storage = request.getfixturevalue("s3_storage") if storage_kind == "s3" else None
    async with serving(tmp_path / "data", storage=storage, database=database) as started:
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


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Started `stembot` processes; each in its own process group, so its workers go with it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def separated(tmp_path_factory: pytest.TempPathFactory, short_wav: Path
                    ) -> AsyncIterator[Separated]:
    """For the pages' tests: one job separated, served on two origins, shared by a module."""
    async with separated_on_two_origins(tmp_path_factory.mktemp("separated") / "data",
                                        short_wav) as job:
        yield job


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Chromium for a module's tests; the module's ARTIFACTS folder made for its screenshots."""
    request.module.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as launched:
        yield launched
