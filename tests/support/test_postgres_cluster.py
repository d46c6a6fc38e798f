"""The throwaway PostgreSQL server itself: it answers, keeps data over a restart, isolates tests."""

from __future__ import annotations

import psycopg

from support.postgres import PostgresCluster


def test_a_database_per_test_survives_a_restart(postgres: PostgresCluster, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (7)")
    postgres.restart()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(7,)]
    other = postgres.create_database()
    with psycopg.connect(other) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
