"""The Connection contract on every backend, and what only PostgreSQL has to survive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.settings import BotSettings
from db import Connection, Dialect, connect, database_dialect
from separation.env import SettingError
from storage import Database, JobStore, NewJob
from storage.database import BOT_SCHEMA
from support.postgres import PostgresCluster, free_port

SNOWFLAKE = 1_234_567_890_123_456_789  # Discord ids need 64 bits
REQUEST = NewJob(guild_id=SNOWFLAKE, channel_id=SNOWFLAKE + 1, user_id=SNOWFLAKE + 2,
                 input_url="https://example.com/50%25.mp3", track_name="a", stems=4,
                 format="mp3")

Schema = dict[str, list[tuple[str, bool, bool]]]


async def schema(conn: Connection) -> Schema:
    """Each table's columns in order as (name, not null, in the primary key)."""
    if conn.dialect is Dialect.SQLITE:
        tables = [row["name"] for row in await conn.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")]
        return {table: [(row["name"], bool(row["notnull"] or row["pk"]), bool(row["pk"]))
                        for row in await conn.fetch_all(
                            "SELECT * FROM pragma_table_info(?) ORDER BY cid", (table,))]
                for table in sorted(tables)}
    rows = await conn.fetch_all(
        "SELECT c.table_name AS t, c.column_name AS name, c.is_nullable = 'NO' AS notnull,"
        " EXISTS (SELECT 1 FROM information_schema.key_column_usage k"
        "  JOIN information_schema.table_constraints tc"
        "   ON tc.constraint_name = k.constraint_name AND tc.table_schema = k.table_schema"
        "  WHERE tc.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema"
        "   AND k.table_name = c.table_name AND k.column_name = c.column_name) AS pk"
        " FROM information_schema.columns c WHERE c.table_schema = current_schema()"
        " AND c.table_name <> ? ORDER BY c.table_name, c.ordinal_position", ("bot_schema_version",))
    found: Schema = {}
    for row in rows:
        found.setdefault(row["t"], []).append((row["name"], row["notnull"], row["pk"]))
    return found


async def test_postgresql_migrates_from_empty_to_sqlites_schema(
    pg_url: str, tmp_path: Path,
) -> None:
    async with await Database.open(tmp_path / "bot.db") as lite:
        expected = await schema(lite.connection)
    empty = await connect(pg_url)
    try:
        assert await BOT_SCHEMA.version(empty) == 0 and await schema(empty) == {}
    finally:
        await empty.close()
    async with await Database.open(pg_url) as db:
        assert db.dialect is Dialect.POSTGRESQL
        # The same versions in both folders, ending at the same schema.
        assert [v for v, _ in BOT_SCHEMA.migrations(Dialect.POSTGRESQL)] == [
            v for v, _ in BOT_SCHEMA.migrations(Dialect.SQLITE)]
        assert await db.version() == BOT_SCHEMA.migrations(Dialect.SQLITE)[-1][0]
        assert await schema(db.connection) == expected
        assert set(expected) == {"jobs", "delivered_stems", "guild_limits"}


async def test_migrating_twice_changes_nothing(database: Path | str) -> None:
    async with await Database.open(database) as db:
        record = await JobStore(db).create(REQUEST)
        before = await schema(db.connection)
        latest = await db.version()
        assert await db.migrate() == latest
        for version in range(1, latest + 1):  # each one refused: applied
            assert await BOT_SCHEMA.migrate(db.connection, upto=version) == latest
        assert await schema(db.connection) == before
        assert await JobStore(db).require(record.id) == record


async def test_64_bit_ids_times_and_percent_signs_round_trip(database: Path | str) -> None:
    async with await Database.open(database) as db:
        jobs = JobStore(db)
        record = await jobs.create(REQUEST)
        assert (record.guild_id, record.user_id) == (SNOWFLAKE, SNOWFLAKE + 2)
        assert record.input_url == "https://example.com/50%25.mp3"
        # Unix seconds keep their microseconds (a 4-byte REAL would round them to minutes).
        kept = await jobs.update(record.id, files_until=1_764_600_000.123456)
        assert kept.files_until == 1_764_600_000.123456
        await jobs.mark_delivered(record.id, "vocals", SNOWFLAKE + 3, None)
        assert (await jobs.delivered(record.id))["vocals"].message_id == SNOWFLAKE + 3
        # A literal % in SQL with no parameters, and with them.
        assert await db.connection.fetch_all(
            "SELECT id FROM jobs WHERE input_url LIKE '%50%'") == [{"id": record.id}]
        assert await db.connection.fetch_all(
            "SELECT id FROM jobs WHERE input_url LIKE ? AND id = ?",
            ("%25.mp3", record.id)) == [{"id": record.id}]


async def test_transaction_rolls_back_and_keeps_other_tasks_statements(
    database: Path | str,
) -> None:
    """A failed transaction undoes only its own writes, not a lone statement run meanwhile."""
    async with await Database.open(database) as db:
        conn = db.connection
        inside = asyncio.Event()

        async def failing() -> None:
            async with conn.transaction() as tx:
                await tx.execute("INSERT INTO guild_limits (guild_id) VALUES (?)", (1,))
                inside.set()
                await asyncio.sleep(0.2)
                raise RuntimeError("boom")

        async def lone() -> None:
            await inside.wait()
            assert await conn.execute(
                "INSERT INTO guild_limits (guild_id) VALUES (?)", (2,)) == 1

        results = await asyncio.gather(failing(), lone(), return_exceptions=True)
        assert isinstance(results[0], RuntimeError) and results[1] is None
        rows = await conn.fetch_all("SELECT guild_id FROM guild_limits ORDER BY guild_id")
        assert [row["guild_id"] for row in rows] == [2]


async def test_postgresql_restart_between_calls_reconnects(
    postgres: PostgresCluster, pg_url: str,
) -> None:
    async with await Database.open(pg_url) as db:
        jobs = JobStore(db)
        first = await jobs.create(REQUEST)
        await asyncio.to_thread(postgres.restart)  # every pooled connection is cut
        assert await jobs.require(first.id) == first
        second = await jobs.create(REQUEST)
        assert [r.id for r in await jobs.unfinished()] == [first.id, second.id]


async def test_unreachable_postgresql_is_one_line_without_the_password() -> None:
    url = f"postgresql://bot:s3cret@127.0.0.1:{free_port()}/records"
    with pytest.raises(ConnectionError) as caught:
        await Database.open(url)
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:")
    assert "/records" in message and "s3cret" not in message and "\n" not in message


async def test_a_database_holding_someone_elses_jobs_table_is_refused(pg_url: str) -> None:
    conn = await connect(pg_url)
    try:
        await conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")  # e.g. the job service's
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="give the bot a database of its own"):
        await Database.open(pg_url)


def test_database_url_chooses_the_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    assert database_dialect("") is Dialect.SQLITE
    assert database_dialect("postgresql://u:p@db:5432/bot") is Dialect.POSTGRESQL
    assert database_dialect("postgres://db/bot") is Dialect.POSTGRESQL
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BOT_DATABASE_URL", raising=False)
    assert BotSettings.from_env().database == tmp_path / "bot.sqlite3"
    monkeypatch.setenv("BOT_DATABASE_URL", " postgresql://u:p@db/bot ")
    assert BotSettings.from_env().database == "postgresql://u:p@db/bot"


@pytest.mark.parametrize("url, says", [
    ("mysql://bot:s3cret@db/bot", "not a mysql:// URL"),
    ("bot:s3cret@db/bot", "not a value without postgresql://"),
    ("postgresql://bot:s3%cret@db/bot", "is not a valid PostgreSQL URL (invalid percent"),
    ("postgresql://bot:s3cret@db/bot?nosuch=1", "(invalid URI query parameter"),
])
def test_a_bad_database_url_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str,
) -> None:
    monkeypatch.setenv("BOT_DATABASE_URL", url)
    with pytest.raises(SettingError) as caught:
        BotSettings.from_env()
    message = str(caught.value)
    assert message.startswith("BOT_DATABASE_URL ") and says in message
    assert "s3cret" not in message and "\n" not in message


async def test_connect_refuses_other_urls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a sqlite:// URL"):
        await connect(f"sqlite://{tmp_path}/bot.db")
