"""The storage tests run on every backend: the SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """What `Database.open` takes: a fresh SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "bot.db"
    url: str = request.getfixturevalue("pg_url")  # the server starts only if asked for
    return url
