"""The store's logic in SQL both SQLite and PostgreSQL run; each backend supplies transactions.

Statements use `?` placeholders (the PostgreSQL transaction rewrites them). Times are the
writing node's clock in ms, so the nodes' clocks must agree to well within a lease (NTP).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from service.protocol import Job
from service.store import FAIR_WINDOW_MS, Gone, Key, MixRecord, NewKey, QueueState, SignIn, now_ms
from service.store_rows import Row, dump_inputs, dump_outputs, load_job, load_key, load_mix
from wire.enums import State
from wire.jobs import InputSpec, OutputSpec

T = TypeVar("T")

_OPEN = (int(State.SUBMITTED), int(State.PROCESSING))
NO_LIMIT = 2**62  # LIMIT for "all": SQLite reads -1 as none, PostgreSQL refuses it
# Transaction-level locks (PostgreSQL advisory lock keys; SQLite's writes serialize anyway).
CLAIM_LOCK = 7_310_001
CALLBACK_LOCK = 7_310_002
INSERT_LOCK = 7_310_003


class Tx(Protocol):
    """One open transaction: rows as mappings, `run` returns the affected row count."""

    async def one(self, sql: str, *args: Any) -> Row | None: ...
    async def all(self, sql: str, *args: Any) -> list[Row]: ...
    async def run(self, sql: str, *args: Any) -> int: ...


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a transaction nobody awaits any more (its caller was cancelled)."""
    if not task.cancelled():
        task.exception()


def _separated(outputs: str) -> bool:
    """Whether a job's stored outputs hold a result a worker made (not all from the cache)."""
    return any(not result.get("fromCache", False)
               for output in json.loads(outputs)
               for result in (output.get("smartContentResult") or {}).get("musicSeperate", []))


def lease_end(lease_s: float, at: int | None = None) -> int:
    return (at if at is not None else now_ms()) + int(lease_s * 1000)


class SqlStore:
    """Everything but the connection: subclasses implement `_tx` (and open/close)."""

    shared = False

    def __init__(self, result_ttl: int = 0) -> None:
        self._ttl_ms = result_ttl * 1000  # STEMBOT_RESULT_TTL, for jobs' `resultsExpireAt`

    async def _tx(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True,
                  lock: int | None = None) -> T:
        """Run `work` in one transaction; `lock` serializes it with others of that lock.

        Shielded: a caller cancelled mid-transaction (a stopped run) must not leave the
        connection inside it; the transaction, a few statements, runs to its end."""
        task = asyncio.ensure_future(self._transaction(work, write=write, lock=lock))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_consume)
            raise

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool,
                           lock: int | None) -> T:
        raise NotImplementedError

    def _job(self, row: Row) -> Job:
        return load_job(row, self._ttl_ms)

    async def _read_one(self, sql: str, *args: Any) -> Row | None:
        async def work(tx: Tx) -> Row | None:
            return await tx.one(sql, *args)
        return await self._tx(work, write=False)

    async def _read_all(self, sql: str, *args: Any) -> list[Row]:
        async def work(tx: Tx) -> list[Row]:
            return await tx.all(sql, *args)
        return await self._tx(work, write=False)

    async def _write(self, sql: str, *args: Any) -> int:
        async def work(tx: Tx) -> int:
            return await tx.run(sql, *args)
        return await self._tx(work)

    async def _write_one(self, sql: str, *args: Any) -> Row | None:
        async def work(tx: Tx) -> Row | None:
            return await tx.one(sql, *args)
        return await self._tx(work)

    # --- keys ----------------------------------------------------------------------------

    async def create_key(self, name: str) -> NewKey:
        key = NewKey(secret_id="AKID" + secrets.token_hex(16),
                     secret_key=secrets.token_urlsafe(32),
                     default_content="repo-" + secrets.token_hex(8))
        created = now_ms()

        async def work(tx: Tx) -> None:
            await tx.run("INSERT INTO keys VALUES (?, ?, ?, ?, ?, 0)",
                         key.secret_id, name, key.secret_key, key.default_content, created)
            await tx.run("INSERT INTO repos VALUES (?, ?, ?)",
                         key.default_content, key.secret_id, created)
        await self._tx(work)
        return key

    async def keys(self) -> list[Key]:
        return [load_key(r) for r in await self._read_all(
            "SELECT * FROM keys ORDER BY created_at")]

    async def key(self, secret_id: str) -> Key | None:
        """The active (not revoked) key with this id."""
        row = await self._read_one("SELECT * FROM keys WHERE secret_id=? AND revoked_at=0",
                                   secret_id)
        return load_key(row) if row else None

    async def signing_key(self, secret_id: str) -> str | None:
        """The secretKey that signs this key's callbacks, revoked or not."""
        row = await self._read_one("SELECT secret_key FROM keys WHERE secret_id=?", secret_id)
        return str(row["secret_key"]) if row else None

    async def revoke_key(self, secret_id: str) -> bool:
        return await self._write("UPDATE keys SET revoked_at=? WHERE secret_id=? AND"
                                 " revoked_at=0", now_ms(), secret_id) == 1

    async def meta_default(self, key: str, value: str) -> str:
        async def work(tx: Tx) -> str:
            await tx.run("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", key, value)
            row = await tx.one("SELECT value FROM meta WHERE key=?", key)
            assert row is not None
            return str(row["value"])
        return await self._tx(work)

    # --- one-click sign-in links ----------------------------------------------------------

    async def add_sign_in(self, digest: str, secret_id: str, expires_at: int) -> None:
        async def work(tx: Tx) -> None:
            await tx.run("DELETE FROM sign_ins WHERE expires_at<?", now_ms() - 86_400_000)
            await tx.run("INSERT INTO sign_ins VALUES (?, ?, ?, 0)", digest, secret_id,
                         expires_at)
        await self._tx(work)

    async def use_sign_in(self, digest: str, at: int) -> tuple[SignIn, bool] | None:
        async def work(tx: Tx) -> tuple[SignIn, bool] | None:
            # one statement decides: of two concurrent uses (any nodes) one updates the row
            row = await tx.one("UPDATE sign_ins SET used_at=? WHERE digest=? AND used_at=0 AND"
                               " expires_at>? RETURNING *", at, digest, at)
            used = row is not None
            if row is None:
                row = await tx.one("SELECT * FROM sign_ins WHERE digest=?", digest)
            if row is None:
                return None
            return SignIn(str(row["secret_id"]), int(row["expires_at"]),
                          int(row["used_at"])), used
        return await self._tx(work)

    # --- content repositories ----------------------------------------------------------

    async def repo_owner(self, content_id: str) -> str | None:
        row = await self._read_one("SELECT owner FROM repos WHERE content_id=?", content_id)
        return str(row["owner"]) if row else None

    async def create_repo(self, content_id: str, owner: str) -> bool:
        """Create the repository for `owner`; False if the id is taken (by anyone)."""
        return await self._write("INSERT INTO repos VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                 content_id, owner, now_ms()) == 1

    async def repos_of(self, owner: str) -> list[str]:
        rows = await self._read_all(
            "SELECT content_id FROM repos WHERE owner=? ORDER BY content_id", owner)
        return [str(r["content_id"]) for r in rows]

    # --- mixes ---------------------------------------------------------------------------

    async def add_mix(self, mix: MixRecord) -> None:
        """Record a mix; the same place written again replaces the older record."""
        await self._write(
            "INSERT INTO mixes VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, content_id,"
            " path) DO UPDATE SET digest=excluded.digest, name=excluded.name,"
            " gains=excluded.gains, format=excluded.format, created_at=excluded.created_at",
            mix.job_id, mix.digest, mix.name, json.dumps(mix.gains), mix.format,
            mix.content_id, mix.path, mix.created_at)

    async def mixes_of(self, job_id: str, digest: str | None = None) -> list[MixRecord]:
        """The job's mixes, oldest first; with `digest`, only those of that mix."""
        sql, args = "SELECT * FROM mixes WHERE job_id=?", [job_id]
        if digest is not None:
            sql, args = sql + " AND digest=?", [job_id, digest]
        return [load_mix(r) for r in await self._read_all(sql + " ORDER BY created_at, path",
                                                          *args)]

    # --- jobs ----------------------------------------------------------------------------

    async def insert_job(self, job: Job, max_open: int) -> bool:
        """Store the job unless its owner already has `max_open` open jobs (one statement under
        a lock, so concurrent CreateJobs on any nodes cannot pass the limit together); True if
        stored."""
        async def work(tx: Tx) -> int:
            return await tx.run(
                "INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs,"
                " created_at, deadline, callback_state, tenant) SELECT ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM jobs WHERE owner=? AND state IN"
                " (1, 2)) < ?",
                job.id, job.owner, job.custom_id, job.callback, int(job.state),
                dump_inputs(job.inputs), dump_outputs(job.outputs), job.created_at,
                job.deadline, job.callback_state, job.tenant, job.owner, max_open)
        return await self._tx(work, lock=INSERT_LOCK) == 1

    async def open_jobs(self, owner: str) -> int:
        """How many of the key's jobs are not final yet."""
        row = await self._read_one(
            "SELECT COUNT(*) AS n FROM jobs WHERE owner=? AND state IN (1, 2)", owner)
        return int(row["n"]) if row else 0

    async def job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job; with `owner`, only if that key owns it."""
        sql, args = "SELECT * FROM jobs WHERE id=?", [job_id]
        if owner is not None:
            sql, args = sql + " AND owner=?", [job_id, owner]
        row = await self._read_one(sql, *args)
        return self._job(row) if row else None

    async def jobs_by_custom_id(self, owner: str, custom_id: str | None, offset: int = 0,
                                limit: int = -1, tenant: str | None = None
                                ) -> tuple[list[Job], int]:
        """One page of the key's jobs with this customId (None: all its jobs) and tenant
        (None: any), oldest first, and how many in all."""
        where, args = "owner=?", [owner]
        if custom_id is not None:
            where, args = where + " AND custom_id=?", [*args, custom_id]
        if tenant is not None:
            where, args = where + " AND tenant=?", [*args, tenant]

        async def work(tx: Tx) -> tuple[list[Job], int]:
            rows = await tx.all(f"SELECT * FROM jobs WHERE {where} ORDER BY seq LIMIT ?"
                                " OFFSET ?", *args, limit if limit >= 0 else NO_LIMIT, offset)
            count = await tx.one(f"SELECT COUNT(*) AS n FROM jobs WHERE {where}", *args)
            return [self._job(r) for r in rows], int(count["n"]) if count else 0
        return await self._tx(work, write=False)

    async def claim_next(self, node: str = "", lease_s: float = 30) -> Job | None:
        """The next SUBMITTED job moved to PROCESSING under a lease; claims are serialized, so
        no job is claimed twice. Fair share on two levels, each by fewest jobs PROCESSING,
        then fewest claims within FAIR_WINDOW_MS, then oldest waiting job: first the key,
        then that key's tenant (no tenant is one more), then the tenant's oldest job.
        service/queue.py's fair_order is the same rule applied to a whole queue: keep them
        in step."""
        at = now_ms()
        since = at - FAIR_WINDOW_MS

        async def work(tx: Tx) -> Row | None:
            pick = await tx.one(
                "SELECT seq FROM jobs AS j WHERE state=1 ORDER BY"
                " (SELECT COUNT(*) FROM jobs AS p WHERE p.owner=j.owner AND p.state=2),"
                " (SELECT COUNT(*) FROM jobs AS r WHERE r.owner=j.owner AND r.started_at>=?),"
                " (SELECT MIN(q.seq) FROM jobs AS q WHERE q.owner=j.owner AND q.state=1),"
                " (SELECT COUNT(*) FROM jobs AS t WHERE t.owner=j.owner AND t.tenant=j.tenant"
                " AND t.state=2),"
                " (SELECT COUNT(*) FROM jobs AS u WHERE u.owner=j.owner AND u.tenant=j.tenant"
                " AND u.started_at>=?), seq LIMIT 1", since, since)
            if pick is None:
                return None
            return await tx.one(
                "UPDATE jobs SET state=2, started_at=?, attempt=attempt+1, lease_node=?,"
                " lease_until=?, progress=0 WHERE seq=? AND state=1 RETURNING *",
                at, node, lease_end(lease_s, at), pick["seq"])
        row = await self._tx(work, lock=CLAIM_LOCK)
        return self._job(row) if row else None

    async def queue_state(self) -> QueueState:
        async def work(tx: Tx) -> QueueState:
            running = await tx.all("SELECT owner, tenant, COUNT(*) AS n FROM jobs WHERE"
                                   " state=2 GROUP BY owner, tenant")
            served = await tx.all("SELECT owner, tenant, COUNT(*) AS n FROM jobs WHERE"
                                  " started_at>=? GROUP BY owner, tenant",
                                  now_ms() - FAIR_WINDOW_MS)
            waiting = await tx.all("SELECT seq, id, owner, tenant FROM jobs WHERE state=1"
                                   " ORDER BY seq")
            # the newest COMPLETED jobs (by creation: the state index serves it)
            done = await tx.all("SELECT started_at, completed_at, outputs FROM jobs WHERE"
                                " state=3 AND started_at>0 ORDER BY seq DESC LIMIT 40")
            return QueueState(
                {(str(r["owner"]), str(r["tenant"])): int(r["n"]) for r in running},
                [(int(r["seq"]), str(r["id"]), str(r["owner"]), str(r["tenant"]))
                 for r in waiting],
                sorted(((int(r["started_at"]), int(r["completed_at"])) for r in done
                        if _separated(str(r["outputs"]))), key=lambda t: -t[1]),
                {(str(r["owner"]), str(r["tenant"])): int(r["n"]) for r in served})
        return await self._tx(work, write=False)

    async def renew(self, job_id: str, attempt: int, lease_s: float, progress: int) -> bool:
        return await self._write(
            # a publish keeps its lease too, so no sweep or DeleteJob thinks its run is gone
            "UPDATE jobs SET lease_until=?, progress=? WHERE id=? AND attempt=? AND"
            " (state=2 OR publishing=1)",
            lease_end(lease_s), progress, job_id, attempt) == 1

    async def release(self, job_id: str, attempt: int) -> None:
        await self._write("UPDATE jobs SET lease_node='', lease_until=0 WHERE id=? AND"
                          " attempt=? AND publishing=0", job_id, attempt)

    async def set_inputs(self, job_id: str, attempt: int, inputs: tuple[InputSpec, ...]
                         ) -> bool:
        return await self._write("UPDATE jobs SET inputs=? WHERE id=? AND attempt=? AND"
                                 " state=2", dump_inputs(inputs), job_id, attempt) == 1

    async def finish(
        self, job_id: str, state: State, *, outputs: Iterable[OutputSpec] | None = None,
        error_code: str = "", error_message: str = "", only_from: Iterable[State] = (),
        attempt: int | None = None, publishing: bool = False, lease_s: float = 30,
    ) -> Job | None:
        """Put an open job in a final state; None if it was already final (someone else won).

        With `attempt` (the worker's own writes) only that attempt, still PROCESSING, can; its
        lease ends, or with `publishing` lasts while its files move into place."""
        at = now_ms()
        sets = ["state=?", "completed_at=?", "error_code=?", "error_message=?",
                "callback_state=CASE WHEN callback='' THEN 'NONE' ELSE 'PENDING' END",
                "callback_due=0", "callback_lease=0"]
        args: list[Any] = [int(state), at, error_code, error_message]
        if outputs is not None:
            sets.append("outputs=?")
            args.append(dump_outputs(tuple(outputs)))
        if attempt is not None:
            sets += ["publishing=?", "lease_until=?"]
            args += [int(publishing), lease_end(lease_s, at) if publishing else 0]
            where, wargs = "id=? AND state=2 AND attempt=?", [job_id, attempt]
        else:
            allowed = tuple(int(s) for s in only_from) or _OPEN
            where = f"id=? AND state IN ({','.join('?' * len(allowed))})"
            wargs = [job_id, *allowed]
        row = await self._write_one(
            f"UPDATE jobs SET {', '.join(sets)} WHERE {where} RETURNING *", *args, *wargs)
        return self._job(row) if row else None

    async def published(self, job_id: str) -> Job | None:
        """Every file of the job is in place: it is COMPLETED for everyone now."""
        row = await self._write_one(
            "UPDATE jobs SET publishing=0, lease_node='', lease_until=0 WHERE id=? AND"
            " publishing=1 RETURNING *", job_id)
        return self._job(row) if row else None

    async def unpublished(self, at: int) -> list[Job]:
        rows = await self._read_all(
            "SELECT * FROM jobs WHERE publishing=1 AND lease_until<? ORDER BY seq", at)
        return [self._job(r) for r in rows]

    async def recover(self, max_restarts: int, node: str = "") -> list[Job]:
        """At a node's start: its own leases are dead, their jobs run again at once (and its
        half-done publishes are finished by the caller); returns those over the limit."""
        await self._write("UPDATE jobs SET lease_until=0 WHERE lease_node=? AND (state=2 OR"
                          " publishing=1)", node)
        return await self.expire_leases(max_restarts)

    async def expire_leases(self, max_restarts: int, at: int | None = None) -> list[Job]:
        """PROCESSING jobs whose lease ended go back to the queue, keeping their place; those
        restarted too often end in ERROR (RESTART_LIMIT), returned."""
        at = now_ms() if at is None else at

        async def work(tx: Tx) -> list[str]:
            await tx.run(
                "UPDATE jobs SET state=1, started_at=0, restarts=restarts+1, lease_node='',"
                " lease_until=0, progress=0 WHERE state=2 AND lease_until<? AND restarts<?",
                at, max_restarts)
            rows = await tx.all("SELECT id FROM jobs WHERE state=2 AND lease_until<?", at)
            return [str(r["id"]) for r in rows]
        failed = []
        for job_id in await self._tx(work):
            job = await self.finish(
                job_id, State.ERROR, error_code="RESTART_LIMIT", only_from=(State.PROCESSING,),
                error_message=f"the job's worker stopped {max_restarts} times during this job"
                              " (service restarts or lost leases)")
            if job:
                failed.append(job)
        return failed

    async def overdue(self, at: int) -> list[str]:
        rows = await self._read_all(
            "SELECT id FROM jobs WHERE state IN (1, 2) AND deadline<=?", at)
        return [str(r["id"]) for r in rows]

    async def open_job_ids(self) -> set[str]:
        rows = await self._read_all(
            "SELECT id FROM jobs WHERE state IN (1, 2) OR publishing=1")
        return {str(r["id"]) for r in rows}

    # --- the callback outbox --------------------------------------------------------------

    async def pending_callbacks(self) -> list[Job]:
        rows = await self._read_all(
            "SELECT * FROM jobs WHERE callback_state='PENDING' ORDER BY seq")
        return [self._job(r) for r in rows]

    async def claim_callback(self, lease_s: float, at: int | None = None) -> Job | None:
        """A due delivery nobody holds, leased to the caller: a node that dies delivering
        leaves it to another once the lease ends (at least once)."""
        at = now_ms() if at is None else at

        async def work(tx: Tx) -> Row | None:
            pick = await tx.one(
                "SELECT seq FROM jobs WHERE callback_state='PENDING' AND publishing=0 AND"
                " callback_due<=? AND callback_lease<? ORDER BY callback_due, seq LIMIT 1",
                at, at)
            if pick is None:
                return None
            return await tx.one("UPDATE jobs SET callback_lease=? WHERE seq=? RETURNING *",
                                lease_end(lease_s, at), pick["seq"])
        row = await self._tx(work, lock=CALLBACK_LOCK)
        return self._job(row) if row else None

    async def record_callback(self, job_id: str, state: str, attempts: int, error: str,
                              due: int = 0) -> None:
        """One delivery's outcome; its lease ends, a PENDING one is due again at `due`."""
        await self._write(
            "UPDATE jobs SET callback_state=?, callback_attempts=?, callback_error=?,"
            " callback_due=?, callback_lease=0 WHERE id=?",
            state, attempts, error, due, job_id)

    # --- retention: a job's files leave in an order that survives a kill ---------------

    async def mark_gone(self, job_ids: list[str], column: str, files: dict[str, list[Gone]]
                        ) -> list[Job]:
        """First step of a removal, in one transaction: the jobs say `column` (deleted_at or
        expired_at) and `purging`, and their files are listed as gone; returns those marked."""
        assert column in ("deleted_at", "expired_at")
        at = now_ms()

        async def work(tx: Tx) -> list[Job]:
            marked = []
            for job_id in job_ids:
                row = await tx.one(f"UPDATE jobs SET {column}=?, purging=1 WHERE id=? AND"
                                   f" {column}=0 RETURNING *", at, job_id)
                if row is None:
                    continue
                marked.append(self._job(row))
                for g in files.get(job_id, []):
                    await tx.run("INSERT INTO gone VALUES (?, ?, ?) ON CONFLICT (content_id,"
                                 " path) DO UPDATE SET job_id=excluded.job_id",
                                 g.content_id, g.path, job_id)
            return marked
        return await self._tx(work)

    async def purged(self, job_ids: list[str]) -> None:
        """Last step of a removal: every file is gone, nothing is left to finish."""
        async def work(tx: Tx) -> None:
            for job_id in job_ids:
                await tx.run("UPDATE jobs SET purging=0 WHERE id=?", job_id)
        await self._tx(work)

    async def purging(self) -> list[Job]:
        return [self._job(r) for r in await self._read_all(
            "SELECT * FROM jobs WHERE purging=1 ORDER BY seq")]

    async def expirable(self, ended_before: int, limit: int) -> list[Job]:
        """Final jobs that ended before the time and still have their files."""
        rows = await self._read_all(
            "SELECT * FROM jobs WHERE expired_at=0 AND deleted_at=0 AND state IN (3, 4, 5)"
            " AND publishing=0 AND completed_at<=? ORDER BY completed_at LIMIT ?",
            ended_before, limit)
        return [self._job(r) for r in rows]

    async def gone_files(self, job_id: str) -> list[Gone]:
        rows = await self._read_all("SELECT content_id, path FROM gone WHERE job_id=?", job_id)
        return [Gone(str(r["content_id"]), str(r["path"])) for r in rows]

    async def gone(self, content_id: str, path: str) -> Job | None:
        """The deleted or expired job a file belonged to, if it is one of those."""
        row = await self._read_one(
            "SELECT jobs.* FROM gone JOIN jobs ON jobs.id=gone.job_id"
            " WHERE gone.content_id=? AND gone.path=?", content_id, path)
        return self._job(row) if row else None

    async def reuse_path(self, content_id: str, path: str) -> None:
        """A new file at a gone path is the owner's own: it is served again."""
        await self._write("DELETE FROM gone WHERE content_id=? AND path=?", content_id, path)

    async def has_files(self, job_id: str) -> bool:
        """False once the job's files were deleted or expired (or it does not exist)."""
        return await self._read_one(
            "SELECT 1 AS one FROM jobs WHERE id=? AND deleted_at=0 AND expired_at=0", job_id
        ) is not None
