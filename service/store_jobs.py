"""The job store's jobs: insert, claim under a lease, renew, finish, publish, recover."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.protocol import Job
from service.store import FAIR_WINDOW_MS, QueueState, now_ms
from service.store_base import (
    CLAIM_LOCK,
    INSERT_LOCK,
    NO_LIMIT,
    OPEN,
    SqlBase,
    Tx,
    lease_end,
    separated,
)
from service.store_rows import Row, dump_inputs, dump_outputs
from wire.enums import State
from wire.jobs import InputSpec, OutputSpec


class JobsSql(SqlBase):
    """A job's life from CreateJob to its final state; writes of a claim are fenced on its
    attempt."""

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
                        if separated(str(r["outputs"]))), key=lambda t: -t[1]),
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
            allowed = tuple(int(s) for s in only_from) or OPEN
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
