"""The claim loop: this node's claims of queued jobs, their leases, the sweeps, its capacity.

Downloads and separations have their own slots: a job holds one of `downloads` claim loops
while its inputs arrive and until a separation worker takes it, so a slow URL never holds
a worker, and inputs are fetched ahead only that far. A node also claims no further ahead
than its free workers plus one: what it cannot start soon stays in the queue for other nodes.

Several nodes may share the store. A claim is a lease that an asyncio task renews (the CPU
work runs in worker processes, so the loop is free), writing the progress with it; a renewal
that finds the job gone from this attempt (canceled, timed out, re-claimed) stops the run.
What a run may write once it lost its lease is ruled in `service.pipeline` (its fencing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING

from service.callbacks import Callbacks
from service.protocol import Job
from service.settings import ServiceSettings
from service.store import Store, now_ms
from wire.enums import State

if TYPE_CHECKING:
    from service.pipeline import Pipeline

log = logging.getLogger("stembot.jobs")


class Capacity:
    """This node's separation slots and the counts its claim loops wait on."""

    def __init__(self, workers: int) -> None:
        self.slots = asyncio.Semaphore(max(1, workers))
        self.held = 0  # jobs claimed here that no worker has taken yet
        self.busy = 0  # workers separating
        self.changed = asyncio.Event()


class Claims:
    """`downloads` loops claim SUBMITTED jobs (none with 0 workers: an API-only node); a
    sweeper enforces deadlines, requeues expired leases and finishes half-done publishes."""

    def __init__(self, settings: ServiceSettings, store: Store, callbacks: Callbacks,
                 capacity: Capacity, pipeline: Pipeline) -> None:
        self._settings = settings
        self._store = store
        self._callbacks = callbacks
        self._capacity = capacity
        self._pipeline = pipeline
        self.wake = asyncio.Event()
        self._node = settings.node
        self._lease_s = settings.lease_seconds
        self._loops: list[asyncio.Task[None]] = []
        self.running: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._claim_loop(), name=f"download-{n}")
                       for n in range(self._settings.downloads if self._pipeline.pool else 0)]
        self._loops.append(asyncio.create_task(self._sweep_loop(), name="deadlines"))

    async def close(self) -> None:
        """Stop the loops and the runs; this node's open jobs go back to the queue at once."""
        for task in self._loops:
            task.cancel()
        for job_id, task in list(self.running.items()):
            await asyncio.to_thread(self._pipeline.touch_abort, job_id)
            task.cancel()
        await asyncio.gather(*self._loops, *self.running.values(), return_exceptions=True)
        try:
            for job in await self._store.expire_leases(self._settings.max_restarts):
                self._callbacks.schedule(job)
        except Exception:  # the database is away: the leases expire by themselves
            log.warning("could not requeue this node's jobs; their leases will expire")

    async def end(self, job_id: str, state: State, code: str, message: str) -> Job | None:
        """Finalize an open job from outside its run (cancel, deadline) and stop the run."""
        job = await self._store.finish(job_id, state, error_code=code, error_message=message)
        if job is None:
            return None
        task = self.running.get(job_id)
        if task is not None:
            await asyncio.to_thread(self._pipeline.touch_abort, job_id)
            task.cancel()
        self._pipeline.progress.pop(job_id, None)
        self._callbacks.schedule(job)
        return job

    async def _claim_loop(self) -> None:
        """Start the next SUBMITTED job; free again once a worker took it or it ended.

        Jobs created on other nodes wake nothing here: the loop also looks every sweep."""
        while True:
            await self._room_to_claim()
            self._capacity.held += 1  # before the claim's await: the other loops see the room taken
            try:
                await self._claim_one()
            finally:
                self._capacity.held -= 1
                self._capacity.changed.set()

    async def _claim_one(self) -> None:
        """Claim a job and hold it until a worker took it or it ended; or wait a sweep."""
        self.wake.clear()  # before the claim: a job submitted after it sets it again
        try:
            job = await self._store.claim_next(self._node, self._lease_s)
        except Exception:  # the database is away for longer than the store retries
            log.exception("claiming a job failed")
            job = None
        if job is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self._settings.sweep_interval, 0.2)):
                    await self.wake.wait()
            return
        # which node ran which attempt: the log is where an operator looks for it
        log.info("job %s attempt %d: claimed by %s", job.id, job.attempt, self._node)
        handed_over = asyncio.Event()
        task = asyncio.create_task(self._leased(job, handed_over), name=f"job-{job.id}")
        self.running[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id, handed_over))
        await handed_over.wait()

    async def _room_to_claim(self) -> None:
        """Wait until jobs held before a worker (`held`) are fewer than free workers + 1.

        Celery's advice for long tasks, prefetch little: one idle worker's node takes two
        jobs (a slow download cannot stall it), a busy node takes one ahead, and the rest
        of the queue is left to nodes whose workers are idle.
        """
        while self._capacity.held >= self._settings.workers - self._capacity.busy + 1:
            self._capacity.changed.clear()
            await self._capacity.changed.wait()

    def _forget(self, job_id: str, handed_over: asyncio.Event, task: asyncio.Task[None]
                ) -> None:
        self.running.pop(job_id, None)
        handed_over.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s: runner failed", job_id, exc_info=task.exception())

    async def _sweep_loop(self) -> None:
        """Every node's duties, idempotent: deadlines, expired leases, orphaned publishes."""
        while True:
            try:
                for job_id in await self._store.overdue(now_ms()):
                    await self.end(job_id, State.ERROR, "TIMEOUT",
                                    "the job did not finish before its timeout")
                for job in await self._store.expire_leases(self._settings.max_restarts):
                    self._callbacks.schedule(job)
                await self._pipeline.finish_publishing()
            except Exception:  # the database is away: try again at the next sweep
                log.exception("sweep failed")
            self.wake.set()  # and look for jobs other nodes created
            await asyncio.sleep(self._settings.sweep_interval)

    async def _leased(self, job: Job, handed_over: asyncio.Event) -> None:
        """Run the attempt while a task renews its lease; give the lease back at its end."""
        run = asyncio.current_task()
        assert run is not None
        keeper = asyncio.create_task(self._keep_lease(job, run), name=f"lease-{job.id}")
        try:
            await self._pipeline.run(job, handed_over)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                await asyncio.shield(self._store.release(job.id, job.attempt))
            except Exception:  # the database is away: the lease expires by itself
                log.warning("job %s: could not release its lease", job.id)

    async def _keep_lease(self, job: Job, run: asyncio.Task[None]) -> None:
        """Renew every second (or lease/3), with the progress; stop the run once it lost the
        job. A renewal that fails on the database is tried again: the lease may yet hold."""
        interval = min(1.0, self._lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._store.renew(job.id, job.attempt, self._lease_s,
                                               self._pipeline.progress.get(job.id, 0))
            except Exception:
                log.warning("job %s: lease renewal failed", job.id, exc_info=True)
                continue
            if not held and (job.id, job.attempt) in self._pipeline.committing:
                return  # it left PROCESSING by this run's own commit
            if not held:
                log.info("job %s attempt %d: no longer this run's; stopping it", job.id,
                         job.attempt)
                await asyncio.to_thread(self._pipeline.touch_abort, job.id)
                run.cancel()
                return
