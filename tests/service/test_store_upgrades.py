"""Every job-store schema as released (tests/service/old_schemas/, taken from git history as
the old code left a new database) upgrades in place, rows and all, to the schema a new
database gets, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
import pytest

from db import Connection, Dialect, SchemaError, connect
from service.store import SCHEMA_VERSION, SignIn, now_ms
from service.store_sql import JOB_SCHEMA, SqlStore
from storage import Database
from wire.enums import State

OLD = Path(__file__).parent / "old_schemas"
RELEASED = sorted(path.name for path in OLD.glob("*.sql"))
OUTPUTS = ('[{"contentId": "repo-a", "destination": "out/", "inputSelectors": [0],'
           ' "smartContentDescriptor": {"musicSeperate": {"method": 1}},'
           ' "smartContentResult": {"musicSeperate": [{"tone": 1,'
           ' "fileName": "out/a-vocals.wav"}]}}]')
INPUTS = '[{"url": "http://h/a.wav"}]'


def rows(version: int, schema: str) -> str:
    """Data a service of that version could have written, in SQL both dialects run."""
    job = ("INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs,"
           " created_at, deadline, started_at, completed_at, attempt, callback_state) VALUES")
    sql = [
        "INSERT INTO keys VALUES ('AKID1', 'alice', 'sk', 'repo-a', 1000, 0)",
        "INSERT INTO repos VALUES ('repo-a', 'AKID1', 1000)",
        f"{job} ('done', 'AKID1', 'c1', 'http://h/cb', 3, '{INPUTS}', '{OUTPUTS}', 1000,"
        " 9999999999999, 1100, 1200, 1, 'PENDING')",
        f"{job} ('running', 'AKID1', '', '', 2, '{INPUTS}', '{OUTPUTS}', 1001, 9999999999999,"
        " 1100, 0, 1, 'NONE')",
        f"{job} ('waiting', 'AKID1', '', '', 1, '{INPUTS}', '{OUTPUTS}', 1002, 9999999999999,"
        " 0, 0, 0, 'NONE')",
    ]
    if version >= 2:
        sql += [f"{job} ('deleted', 'AKID1', '', '', 3, '{INPUTS}', '{OUTPUTS}', 900,"
                " 9999999999999, 910, 920, 1, 'NONE')",
                "UPDATE jobs SET deleted_at = 1300 WHERE id = 'deleted'",
                "INSERT INTO gone VALUES ('repo-a', 'old/a-vocals.wav', 'deleted')"]
    if version >= 3:  # the old node's lease ended long ago
        sql.append("UPDATE jobs SET lease_node = 'n0', lease_until = 5 WHERE id = 'running'")
    if version >= 4:
        sql.append("UPDATE jobs SET tenant = 't1' WHERE id = 'waiting'")
    if re.search(r"TABLE (IF NOT EXISTS )?mixes", schema):
        sql.append("INSERT INTO mixes VALUES ('done', 'd1', 'karaoke', '{\"vocals\": 0.0}',"
                   " 'wav', 'repo-a', 'mixes/k.wav', 1300)")
    if re.search(r"TABLE (IF NOT EXISTS )?sign_ins", schema):
        sql.append("INSERT INTO sign_ins VALUES ('dg', 'AKID1', 9999999999999, 0)")
    return ";\n".join(sql) + ";\n"


async def make_old(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    """A database as the release of `name` left it, with rows in it; its target."""
    dialect, version, _ = name.split("_")
    schema = (OLD / name).read_text()
    script = schema + rows(int(version), schema)
    if dialect == "sqlite":
        path = tmp_path / "service.sqlite3"
        with sqlite3.connect(path) as db:
            db.executescript(script)
        return path
    url: str = request.getfixturevalue("pg_url")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(script.encode())
    return url


async def shape(conn: Connection) -> dict[str, object]:
    """Each table's columns (name, type, not null, default) in order, and the index names."""
    if conn.dialect is Dialect.SQLITE:
        tables = [r["name"] for r in await conn.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")]
        found: dict[str, object] = {t: [(r["name"], r["type"], r["notnull"], r["dflt_value"])
                                        for r in await conn.fetch_all(
                                            "SELECT * FROM pragma_table_info(?)", (t,))]
                                    for t in sorted(tables)}
        found["indexes"] = sorted(r["name"] for r in await conn.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'index'"
            " AND name NOT LIKE 'sqlite_autoindex%'"))
        return found
    columns = await conn.fetch_all(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " ORDER BY table_name, ordinal_position")
    found: dict[str, list[tuple[object, ...]]] = {}
    for r in columns:
        found.setdefault(str(r["table_name"]), []).append(
            (r["column_name"], r["data_type"], r["is_nullable"], r["column_default"],
             r["is_identity"]))
    found["indexes"] = sorted(r["indexname"] for r in await conn.fetch_all(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))
    return found


async def fresh_shape(dialect: str, tmp_path: Path, request: pytest.FixtureRequest
                      ) -> dict[str, object]:
    target: Path | str = tmp_path / "fresh.sqlite3"
    if dialect == "postgresql":
        target = request.getfixturevalue("postgres").create_database()
    conn = await connect(target)
    try:
        assert await JOB_SCHEMA.migrate(conn) == SCHEMA_VERSION
        return await shape(conn)
    finally:
        await conn.close()


def test_the_schema_version_is_the_last_migration() -> None:
    for dialect in Dialect:
        assert [v for v, _ in JOB_SCHEMA.migrations(dialect)] == list(
            range(1, SCHEMA_VERSION + 1))


# The newest schema a commit on main has written (5, the fair-share indexes, is new in this
# tree): when a schema ships, its snapshot joins old_schemas/ and this moves up.
LAST_RELEASED = 4


def test_every_released_version_has_a_schema_here() -> None:
    assert LAST_RELEASED <= SCHEMA_VERSION
    assert {name.split("_")[1] for name in RELEASED if name.startswith("sqlite")} == {
        str(v) for v in range(1, LAST_RELEASED + 1)}
    assert {name.split("_")[1] for name in RELEASED if name.startswith("postgresql")} == {
        "3", str(LAST_RELEASED)}  # PostgreSQL came with schema 3


@pytest.mark.parametrize("name", RELEASED)
async def test_a_released_database_upgrades_in_place(
        name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    version = int(name.split("_")[1])
    target = await make_old(name, tmp_path, request)
    store = await SqlStore.open(target)
    try:
        assert await store.meta_default("schema", "?") == str(SCHEMA_VERSION)
        assert [k.name for k in await store.keys()] == ["alice"]
        assert await store.repo_owner("repo-a") == "AKID1"
        done = await store.job("done", "AKID1")
        assert done is not None and done.state is State.COMPLETED
        assert done.outputs[0].results and done.outputs[0].results[0].file_name == (
            "out/a-vocals.wav")
        assert [j.id for j in await store.pending_callbacks()] == ["done"]
        # the job running when the old release stopped runs again, first in line
        assert await store.expire_leases(3) == []
        claimed = [await store.claim_next("n1") for _ in range(3)]
        assert [j.id if j else None for j in claimed] == ["running", "waiting", None]
        assert claimed[1] is not None and claimed[1].tenant == ("t1" if version >= 4 else "")
        if version >= 2:
            gone = await store.gone("repo-a", "old/a-vocals.wav")
            assert gone is not None and gone.id == "deleted"
            assert not await store.has_files("deleted")
        mixes = await store.mixes_of("done")
        assert [m.name for m in mixes] == (["karaoke"] if "mixes" in (OLD / name).read_text()
                                           else [])
        await store.add_sign_in("new", "AKID1", now_ms() + 60_000)
        used = await store.use_sign_in("new", now_ms())
        assert used is not None and used[1]
        if "sign_ins" in (OLD / name).read_text():  # a link made before, still unused
            at = now_ms()
            assert await store.use_sign_in("dg", at) == (SignIn("AKID1", 9999999999999, at),
                                                         True)
    finally:
        await store.close()
    conn = await connect(target)
    try:
        upgraded = await shape(conn)
        assert await JOB_SCHEMA.migrate(conn) == SCHEMA_VERSION  # a second time: nothing
        assert await shape(conn) == upgraded
    finally:
        await conn.close()
    assert upgraded == await fresh_shape(name.split("_")[0], tmp_path, request)


async def test_a_postgresql_database_holding_the_bots_records_is_refused(pg_url: str) -> None:
    """The bot's records and the job store both have a `jobs` table: never mixed up."""
    await (await Database.open(pg_url)).close()
    with pytest.raises(SchemaError, match="give the job service a database of its own"):
        await SqlStore.open(pg_url)
