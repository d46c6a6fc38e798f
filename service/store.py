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

from separation import Tone
from service.protocol import InputSpec, Job, Method, OutputSpec, Result, State

P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 1

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
    callback_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
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

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The key table holds secretKeys (they sign callbacks): readable by the owner only.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db)
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
        async with self._db.execute("SELECT value FROM meta WHERE key='schema'") as cur:
            row = await cur.fetchone()
        if row is None:
            await self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema {row[0]} is newer than this stembot ({SCHEMA_VERSION})")
        await self._db.commit()

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

    # --- jobs ----------------------------------------------------------------------------

    @serialized
    async def insert_job(self, job: Job) -> None:
        await self._db.execute(
            "INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs,"
            " created_at, deadline, callback_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.owner, job.custom_id, job.callback, int(job.state),
             _dump_inputs(job.inputs), _dump_outputs(job.outputs), job.created_at,
             job.deadline, job.callback_state))
        await self._db.commit()

    @serialized
    async def job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job; with `owner`, only if that key owns it."""
        sql, args = "SELECT * FROM jobs WHERE id=?", [job_id]
        if owner is not None:
            sql, args = sql + " AND owner=?", [job_id, owner]
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return _job(row) if row else None

    @serialized
    async def jobs_by_custom_id(self, owner: str, custom_id: str) -> list[Job]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE owner=? AND custom_id=? ORDER BY seq", (owner, custom_id)
        ) as cur:
            return [_job(row) for row in await cur.fetchall()]

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
        return _job(row) if row else None

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
        return _job(row) if row else None

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
            return [_job(row) for row in await cur.fetchall()]

    @serialized
    async def record_callback(self, job_id: str, state: str, attempts: int, error: str) -> None:
        await self._db.execute(
            "UPDATE jobs SET callback_state=?, callback_attempts=?, callback_error=? WHERE id=?",
            (state, attempts, error, job_id))
        await self._db.commit()


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
            Result(Tone(r["tone"]), r["fileName"]) for r in results["musicSeperate"]),
        shifts=raw["smartContentDescriptor"]["musicSeperate"].get("shifts", 1),
        facts=None if results is None or "facts" not in results else tuple(results["facts"]),
    )


def _job(row: aiosqlite.Row) -> Job:
    return Job(
        id=row["id"], owner=row["owner"], custom_id=row["custom_id"], callback=row["callback"],
        state=State(row["state"]),
        inputs=tuple(_load_input(i) for i in json.loads(row["inputs"])),
        outputs=tuple(_load_output(o) for o in json.loads(row["outputs"])),
        created_at=row["created_at"], deadline=row["deadline"], started_at=row["started_at"],
        completed_at=row["completed_at"], attempt=row["attempt"], restarts=row["restarts"],
        error_code=row["error_code"], error_message=row["error_message"],
        callback_state=row["callback_state"], callback_attempts=row["callback_attempts"],
        callback_error=row["callback_error"],
    )
