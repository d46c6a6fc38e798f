"""The SQLite store on its own: restart recovery and the schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from separation.presets import StemPreset
from service.protocol import Job
from service.store import SCHEMA_VERSION, SchemaError, now_ms
from service.store_sql import SqlStore
from wire.enums import State
from wire.jobs import InputSpec, OutputSpec


def job(job_id: str, owner: str) -> Job:
    return Job(id=job_id, owner=owner, custom_id="", callback="http://h/cb",
               state=State.SUBMITTED, inputs=(InputSpec(url="http://h/a.wav"),),
               outputs=(OutputSpec("repo", "/", (0,), StemPreset.TWO_STEMS),),
               created_at=now_ms(), deadline=now_ms() + 60_000)


async def test_recover_requeues_in_order_then_gives_up(tmp_path: Path) -> None:
    store = await SqlStore.open(tmp_path / "db.sqlite3")
    key = await store.create_key("k")
    for name in ("a", "b", "c"):
        await store.insert_job(job(name, key.secret_id), max_open=10)
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == "a" and claimed.state is State.PROCESSING
    for restart in range(1, 3):
        assert await store.recover(max_restarts=2) == []
        again = await store.claim_next()
        assert again is not None and again.id == "a" and again.attempt == restart + 1
    failed = await store.recover(max_restarts=2)
    assert [(j.id, j.state, j.error_code) for j in failed] == [("a", State.ERROR,
                                                               "RESTART_LIMIT")]
    assert failed[0].callback_state == "PENDING"
    assert [j.id for j in await store.pending_callbacks()] == ["a"]
    nxt = await store.claim_next()
    assert nxt is not None and nxt.id == "b"
    await store.close()


async def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await SqlStore.open(path)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaError):
        await SqlStore.open(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
