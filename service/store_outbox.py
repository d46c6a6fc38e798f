"""The job store's callback outbox and retention (a job's files leaving in a kill-proof order)."""

from __future__ import annotations

from service.protocol import Job
from service.store import Gone, now_ms
from service.store_base import CALLBACK_LOCK, SqlBase, Tx, lease_end
from service.store_rows import Row


class OutboxSql(SqlBase):
    """Callback deliveries (at least once, across nodes) and the removal of jobs' files."""

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
