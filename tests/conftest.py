"""Fixtures shared by every part's tests: one loaded engine, one rendered clip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from separation import OutputFormat, Separator, encode, synth
from separation.dsp import Float
from tests.infra.postgres import PostgresCluster


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
