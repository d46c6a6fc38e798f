"""The SQLite store: keys, content repositories and jobs, under a schema version."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite

from separation.presets import Tone
from service.protocol import InputSpec, Job, Method, OutputSpec, Result, State

P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS repos (
    content_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    callback TEXT NOT NULL,
    state INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    started_at INTEGER NOT NULL DEFAULT 0,
    completed_at INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT NOT NULL DEFAULT '',
    deleted_at INTEGER NOT NULL DEFAULT 0,
    expired_at INTEGER NOT NULL DEFAULT 0,
    purging INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
CREATE INDEX IF NOT EXISTS jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner_state ON jobs (owner, state);
-- a mix is a result derived from a job: it goes when its job goes
CREATE TABLE IF NOT EXISTS mixes (
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    gains TEXT NOT NULL,
    format TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, content_id, path)
);
CREATE INDEX IF NOT EXISTS mixes_by_digest ON mixes (job_id, digest);
"""

# Schema 2 (retention): columns a schema-1 database lacks, added in place; then the indexes
# that use them. Each step checks first, so running it twice changes nothing.
RETENTION_COLUMNS = ("deleted_at", "expired_at", "purging")
RETENTION_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX IF NOT EXISTS jobs_purging ON jobs (purging);
"""

_OPEN = (int(State.SUBMITTED), int(State.PROCESSING))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Key:
    secret_id: str
    name: str
    secret_key: str
    default_content: str
    created_at: int
    revoked_at: int


@dataclass(frozen=True, slots=True)
class NewKey:
    secret_id: str
    secret_key: str
    default_content: str


@dataclass(frozen=True, slots=True)
class MixRecord:
    """One rendered mix of a job: where it is, and what it holds (gains by stem, format)."""

    job_id: str
    digest: str
    name: str
    gains: dict[str, float]
    format: str
    content_id: str
    path: str
    created_at: int


class SchemaError(RuntimeError):
    """The database was written by a newer, unknown schema."""


def serialized(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run the method under the store's lock: one connection, so one statement-and-commit
    at a time (an open cursor in one coroutine would make another's commit fail)."""

    @functools.wraps(method)
    async def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, Store)
        async with store._lock:
            return await method(*args, **kwargs)

    return locked


class Store:
    """One aiosqlite connection; every method is one short statement or transaction."""

    def __init__(self, db: aiosqlite.Connection, result_ttl: int = 0) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._ttl_ms = result_ttl * 1000  # STEMBOT_RESULT_TTL, for jobs' `resultsExpireAt`

    @classmethod
    async def open(cls, path: Path, result_ttl: int = 0) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The key table holds secretKeys (they sign callbacks): readable by the owner only.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db, result_ttl)
        try:
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _migrate(self) -> None:
        await self._db.executescript(SCHEMA)
        await self._add_retention_columns()
        async with self._db.execute("SELECT value FROM meta WHERE key='schema'") as cur:
            row = await cur.fetchone()
        if row is None:
            await self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema {row[0]} is newer than this stembot ({SCHEMA_VERSION})")
        else:
            await self._db.execute("UPDATE meta SET value=? WHERE key='schema'",
                                   (str(SCHEMA_VERSION),))
        await self._db.commit()

    async def _add_retention_columns(self) -> None:
        async with self._db.execute("PRAGMA table_info(jobs)") as cur:
            present = {str(row[1]) for row in await cur.fetchall()}
        for column in RETENTION_COLUMNS:
            if column not in present:
                await self._db.execute(
                    f"ALTER TABLE jobs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        await self._db.executescript(RETENTION_INDEXES)

    def _job(self, row: aiosqlite.Row) -> Job:
        """The job, with when its files will expire if they still exist."""
        job = _load_job(row)
        if self._ttl_ms and job.state.final and not (job.deleted_at or job.expired_at):
            job.files_until = job.completed_at + self._ttl_ms
        return job

    # --- keys ----------------------------------------------------------------------------

    @serialized
    async def create_key(self, name: str) -> NewKey:
        key = NewKey(secret_id="AKID" + secrets.token_hex(16),
                     secret_key=secrets.token_urlsafe(32),
                     default_content="repo-" + secrets.token_hex(8))
        created = now_ms()
        await self._db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, 0)",
                               (key.secret_id, name, key.secret_key, key.default_content, created))
        await self._db.execute("INSERT INTO repos VALUES (?, ?, ?)",
                               (key.default_content, key.secret_id, created))
        await self._db.commit()
        return key

    @serialized
    async def keys(self) -> list[Key]:
        async with self._db.execute("SELECT * FROM keys ORDER BY created_at") as cur:
            return [Key(**dict(row)) for row in await cur.fetchall()]

    @serialized
    async def key(self, secret_id: str) -> Key | None:
        """The active (not revoked) key with this id."""
        async with self._db.execute(
            "SELECT * FROM keys WHERE secret_id=? AND revoked_at=0", (secret_id,)
        ) as cur:
            row = await cur.fetchone()
        return Key(**dict(row)) if row else None

    @serialized
    async def signing_key(self, secret_id: str) -> str | None:
        """The secretKey that signs this key's callbacks, revoked or not."""
        async with self._db.execute(
            "SELECT secret_key FROM keys WHERE secret_id=?", (secret_id,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    @serialized
    async def revoke_key(self, secret_id: str) -> bool:
        cur = await self._db.execute(
            "UPDATE keys SET revoked_at=? WHERE secret_id=? AND revoked_at=0",
            (now_ms(), secret_id))
        await self._db.commit()
        return cur.rowcount == 1

    # --- content repositories ----------------------------------------------------------

    @serialized
    async def repo_owner(self, content_id: str) -> str | None:
        async with self._db.execute(
            "SELECT owner FROM repos WHERE content_id=?", (content_id,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    @serialized
    async def create_repo(self, content_id: str, owner: str) -> bool:
        """Create the repository for `owner`; False if the id is taken (by anyone)."""
        cur = await self._db.execute("INSERT OR IGNORE INTO repos VALUES (?, ?, ?)",
                                     (content_id, owner, now_ms()))
        await self._db.commit()
        return cur.rowcount == 1

    @serialized
    async def repos_of(self, owner: str) -> list[str]:
        async with self._db.execute(
            "SELECT content_id FROM repos WHERE owner=? ORDER BY content_id", (owner,)
        ) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    # --- mixes ---------------------------------------------------------------------------

    @serialized
    async def add_mix(self, mix: MixRecord) -> None:
        """Record a mix; the same place written again replaces the older record."""
        await self._db.execute(
            "INSERT OR REPLACE INTO mixes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (mix.job_id, mix.digest, mix.name, json.dumps(mix.gains), mix.format,
             mix.content_id, mix.path, mix.created_at))
        await self._db.commit()

    @serialized
    async def mixes_of(self, job_id: str, digest: str | None = None) -> list[MixRecord]:
        """The job's mixes, oldest first; with `digest`, only those of that mix."""
        sql, args = "SELECT * FROM mixes WHERE job_id=?", [job_id]
        if digest is not None:
            sql, args = sql + " AND digest=?", [job_id, digest]
        async with self._db.execute(sql + " ORDER BY created_at, path", args) as cur:
            rows = await cur.fetchall()
        return [MixRecord(r["job_id"], r["digest"], r["name"], json.loads(r["gains"]),
                          r["format"], r["content_id"], r["path"], r["created_at"])
                for r in rows]

    # --- jobs ----------------------------------------------------------------------------

    @serialized
    async def insert_job(self, job: Job, max_open: int) -> bool:
        """Store the job unless its owner already has `max_open` open jobs (in one statement,
        so concurrent CreateJobs cannot pass the limit together); True if stored."""
        cur = await self._db.execute(
            "INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs,"
            " created_at, deadline, callback_state) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE (SELECT COUNT(*) FROM jobs WHERE owner=? AND state IN (1, 2)) < ?",
            (job.id, job.owner, job.custom_id, job.callback, int(job.state),
             _dump_inputs(job.inputs), _dump_outputs(job.outputs), job.created_at,
             job.deadline, job.callback_state, job.owner, max_open))
        await self._db.commit()
        return cur.rowcount == 1

    @serialized
    async def open_jobs(self, owner: str) -> int:
        """How many of the key's jobs are not final yet."""
        async with self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE owner=? AND state IN (1, 2)", (owner,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @serialized
    async def job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job; with `owner`, only if that key owns it."""
        sql, args = "SELECT * FROM jobs WHERE id=?", [job_id]
        if owner is not None:
            sql, args = sql + " AND owner=?", [job_id, owner]
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return self._job(row) if row else None

    @serialized
    async def jobs_by_custom_id(self, owner: str, custom_id: str | None, offset: int = 0,
                                limit: int = -1) -> tuple[list[Job], int]:
        """One page of the key's jobs with this customId (None: all its jobs), oldest first,
        and how many in all."""
        where, args = "owner=?", [owner]
        if custom_id is not None:
            where, args = where + " AND custom_id=?", [owner, custom_id]
        async with self._db.execute(
            f"SELECT * FROM jobs WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            (*args, limit, offset)
        ) as cur:
            jobs = [self._job(row) for row in await cur.fetchall()]
        async with self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args) as cur:
            row = await cur.fetchone()
        return jobs, int(row[0]) if row else 0

    @serialized
    async def claim_next(self) -> Job | None:
        """Move the oldest SUBMITTED job to PROCESSING in one statement, and return it."""
        async with self._db.execute(
            "UPDATE jobs SET state=2, started_at=?, attempt=attempt+1 WHERE seq ="
            " (SELECT seq FROM jobs WHERE state=1 ORDER BY seq LIMIT 1) AND state=1 RETURNING *",
            (now_ms(),),
        ) as cur:
            row = await cur.fetchone()
        await self._db.commit()
        return self._job(row) if row else None

    @serialized
    async def finish(
        self, job_id: str, state: State, *, outputs: Iterable[OutputSpec] | None = None,
        error_code: str = "", error_message: str = "", only_from: Iterable[State] = (),
    ) -> Job | None:
        """Put an open job in a final state; None if it was already final (someone else won)."""
        allowed = tuple(int(s) for s in only_from) or _OPEN
        sets = ["state=?", "completed_at=?", "error_code=?", "error_message=?",
                "callback_state=CASE WHEN callback='' THEN 'NONE' ELSE 'PENDING' END"]
        args: list[Any] = [int(state), now_ms(), error_code, error_message]
        if outputs is not None:
            sets.append("outputs=?")
            args.append(_dump_outputs(tuple(outputs)))
        marks = ",".join("?" * len(allowed))
        async with self._db.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id=? AND state IN ({marks}) RETURNING *",
            (*args, job_id, *allowed),
        ) as cur:
            row = await cur.fetchone()
        await self._db.commit()
        return self._job(row) if row else None

    async def recover(self, max_restarts: int) -> list[Job]:
        """After a restart: PROCESSING jobs run again; those restarted too often end in ERROR."""
        failed = []
        for job_id in await self._requeue(max_restarts):
            job = await self.finish(
                job_id, State.ERROR, error_code="RESTART_LIMIT",
                error_message=f"the service restarted {max_restarts} times during this job")
            if job:
                failed.append(job)
        return failed

    @serialized
    async def _requeue(self, max_restarts: int) -> list[str]:
        """Back to SUBMITTED, keeping their place in the queue; returns those over the limit."""
        await self._db.execute(
            "UPDATE jobs SET state=1, started_at=0, restarts=restarts+1"
            " WHERE state=2 AND restarts<?", (max_restarts,))
        async with self._db.execute("SELECT id FROM jobs WHERE state=2") as cur:
            stuck = [str(row[0]) for row in await cur.fetchall()]
        await self._db.commit()
        return stuck

    @serialized
    async def overdue(self, at: int) -> list[str]:
        async with self._db.execute(
            "SELECT id FROM jobs WHERE state IN (1, 2) AND deadline<=?", (at,)
        ) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    @serialized
    async def open_job_ids(self) -> set[str]:
        async with self._db.execute("SELECT id FROM jobs WHERE state IN (1, 2)") as cur:
            return {str(row[0]) for row in await cur.fetchall()}

    @serialized
    async def pending_callbacks(self) -> list[Job]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE callback_state='PENDING' ORDER BY seq"
        ) as cur:
            return [self._job(row) for row in await cur.fetchall()]

    @serialized
    async def record_callback(self, job_id: str, state: str, attempts: int, error: str) -> None:
        await self._db.execute(
            "UPDATE jobs SET callback_state=?, callback_attempts=?, callback_error=? WHERE id=?",
            (state, attempts, error, job_id))
        await self._db.commit()


    # --- retention: a job's files leave in an order that survives a kill ---------------

    @serialized
    async def mark_gone(self, job_ids: list[str], column: str, files: dict[str, list[Gone]]
                        ) -> list[Job]:
        """First step of a removal, in one transaction: the jobs say `column` (deleted_at or
        expired_at) and `purging`, and their files are listed as gone; returns those marked."""
        assert column in ("deleted_at", "expired_at")
        at, marked = now_ms(), []
        for job_id in job_ids:
            async with self._db.execute(
                f"UPDATE jobs SET {column}=?, purging=1 WHERE id=? AND {column}=0 RETURNING *",
                (at, job_id),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                marked.append(self._job(row))
                await self._db.executemany(
                    "INSERT OR REPLACE INTO gone VALUES (?, ?, ?)",
                    [(g.content_id, g.path, job_id) for g in files.get(job_id, [])])
        await self._db.commit()
        return marked

    @serialized
    async def purged(self, job_ids: list[str]) -> None:
        """Last step of a removal: every file is gone, nothing is left to finish."""
        await self._db.executemany("UPDATE jobs SET purging=0 WHERE id=?",
                                   [(job_id,) for job_id in job_ids])
        await self._db.commit()

    @serialized
    async def purging(self) -> list[Job]:
        async with self._db.execute("SELECT * FROM jobs WHERE purging=1 ORDER BY seq") as cur:
            return [self._job(row) for row in await cur.fetchall()]

    @serialized
    async def expirable(self, ended_before: int, limit: int) -> list[Job]:
        """Final jobs that ended before the time and still have their files."""
        async with self._db.execute(
            "SELECT * FROM jobs WHERE expired_at=0 AND deleted_at=0 AND state IN (3, 4, 5)"
            " AND completed_at<=? ORDER BY completed_at LIMIT ?", (ended_before, limit),
        ) as cur:
            return [self._job(row) for row in await cur.fetchall()]

    @serialized
    async def gone_files(self, job_id: str) -> list[Gone]:
        async with self._db.execute(
            "SELECT content_id, path FROM gone WHERE job_id=?", (job_id,)) as cur:
            return [Gone(str(row[0]), str(row[1])) for row in await cur.fetchall()]

    @serialized
    async def gone(self, content_id: str, path: str) -> Job | None:
        """The deleted or expired job a file belonged to, if it is one of those."""
        async with self._db.execute(
            "SELECT jobs.* FROM gone JOIN jobs ON jobs.id=gone.job_id"
            " WHERE gone.content_id=? AND gone.path=?", (content_id, path),
        ) as cur:
            row = await cur.fetchone()
        return self._job(row) if row else None

    @serialized
    async def reuse_path(self, content_id: str, path: str) -> None:
        """A new file at a gone path is the owner's own: it is served again."""
        await self._db.execute("DELETE FROM gone WHERE content_id=? AND path=?",
                               (content_id, path))
        await self._db.commit()

    @serialized
    async def has_files(self, job_id: str) -> bool:
        """False once the job's files were deleted or expired (or it does not exist)."""
        async with self._db.execute(
            "SELECT 1 FROM jobs WHERE id=? AND deleted_at=0 AND expired_at=0", (job_id,)
        ) as cur:
            return await cur.fetchone() is not None


@dataclass(frozen=True, slots=True)
class Gone:
    """A file of a deleted or expired job: its content repository and path there."""

    content_id: str
    path: str


def _dump_inputs(inputs: tuple[InputSpec, ...]) -> str:
    return json.dumps([i.wire() for i in inputs])


def _dump_outputs(outputs: tuple[OutputSpec, ...]) -> str:
    return json.dumps([o.wire() for o in outputs])


def _load_input(raw: dict[str, Any]) -> InputSpec:
    if "url" in raw:
        return InputSpec(url=raw["url"])
    return InputSpec(content_id=raw["source"]["contentId"], path=raw["source"]["path"])


def _load_output(raw: dict[str, Any]) -> OutputSpec:
    results = raw.get("smartContentResult")
    return OutputSpec(
        content_id=raw["contentId"],
        destination=raw["destination"],
        selectors=tuple(raw["inputSelectors"]),
        method=Method(raw["smartContentDescriptor"]["musicSeperate"]["method"]),
        results=None if results is None else tuple(
            Result(Tone(r["tone"]), r["fileName"], r.get("fromCache", False))
            for r in results["musicSeperate"]),
        shifts=raw["smartContentDescriptor"]["musicSeperate"].get("shifts", 1),
        facts=None if results is None or "facts" not in results else tuple(results["facts"]),
    )


def _load_job(row: aiosqlite.Row) -> Job:
    return Job(
        id=row["id"], owner=row["owner"], custom_id=row["custom_id"], callback=row["callback"],
        state=State(row["state"]),
        inputs=tuple(_load_input(i) for i in json.loads(row["inputs"])),
        outputs=tuple(_load_output(o) for o in json.loads(row["outputs"])),
        created_at=row["created_at"], deadline=row["deadline"], started_at=row["started_at"],
        completed_at=row["completed_at"], attempt=row["attempt"], restarts=row["restarts"],
        error_code=row["error_code"], error_message=row["error_message"],
        callback_state=row["callback_state"], callback_attempts=row["callback_attempts"],
        callback_error=row["callback_error"], deleted_at=row["deleted_at"],
        expired_at=row["expired_at"],
    )
