"""The job store on the ground floor (db/): one class for SQLite and PostgreSQL, in parts.

Its schema is the numbered migrations in service/migrations/, its version the `meta` table's
'schema' row (as before the migrations were files).
"""

from __future__ import annotations

from pathlib import Path

from db import MetaLedger, Schema, open_migrated
from service.store_base import MIGRATE_LOCK
from service.store_jobs import JobsSql
from service.store_keys import KeysSql
from service.store_outbox import OutboxSql

JOB_SCHEMA = Schema(name="the job service", package="service.migrations",
                    ledger=MetaLedger("meta", "schema"), lock=MIGRATE_LOCK,
                    foreign_table="jobs")


class SqlStore(KeysSql, JobsSql, OutboxSql):
    """The Store: keys, jobs, the outbox; every method one short transaction."""

    @classmethod
    async def open(cls, target: Path | str, result_ttl: int = 0,
                   pool_size: int = 10) -> SqlStore:
        """`target`: the SQLite file's path, or a postgresql:// URL; migrated on opening."""
        return cls(await open_migrated(target, JOB_SCHEMA, pool_size=pool_size), result_ttl)
