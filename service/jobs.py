"""The job runner: the service's one face for jobs (submit, cancel, delete, the progress and
queue shown), composing this node's claim loop (`service.claims`: claims, leases, sweeps,
capacity) and the run of one job (`service.pipeline`: inputs, separation, commit, publish).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from service.callbacks import Callbacks
from service.claims import Capacity, Claims
from service.content import ContentStore
from service.limits import too_many_jobs
from service.pipeline import Pipeline
from service.protocol import Job, JobRequest
from service.queue import QueueView
from service.quota import StorageQuota
from service.retention import Retention
from service.settings import ServiceSettings
from service.store import Store, now_ms
from service.worker import WorkerPool
from wire.enums import State
from wire.jobs import OutputSpec


class JobRunner:
    """Jobs as the API asks for them; the claim loop and the pipeline do the running."""

    def __init__(self, settings: ServiceSettings, store: Store, content: ContentStore,
                 callbacks: Callbacks, quota: StorageQuota) -> None:
        self._settings = settings
        self._store = store
        self._content = content
        self._callbacks = callbacks
        self._node = settings.node
        self._lease_s = settings.lease_seconds
        capacity = Capacity(settings.workers)
        self._pipeline = Pipeline(settings, store, content, callbacks, quota, capacity)
        self._claims = Claims(settings, store, callbacks, capacity, self._pipeline)
        self._queue = QueueView(store)

    async def start(self) -> None:
        await self._pipeline.start()
        self.retention: Retention = self._pipeline.retention
        # This node's leases died with its last run: those jobs run again at once.
        for job in await self._store.recover(self._settings.max_restarts, self._node):
            self._callbacks.schedule(job)
        await self._pipeline.finish_publishing()
        open_ids = await self._store.open_job_ids()
        await asyncio.to_thread(self._pipeline.clean_work, open_ids)
        for job_id in set(await self._content.staged_jobs()) - open_ids:
            await self._content.unstage(job_id)  # a killed run's or a lost attempt's stems
        self._claims.start()

    async def close(self) -> None:
        """Stop without finishing anything: open jobs go back to the queue at once (their
        leases released), for another node or the next start."""
        await self._claims.close()
        await self._pipeline.close()

    # --- requests from the API ------------------------------------------------------

    async def submit(self, owner: str, request: JobRequest, outputs: tuple[OutputSpec, ...]
                     ) -> Job:
        created = now_ms()
        job = Job(id=str(uuid.uuid4()), owner=owner, custom_id=request.custom_id,
                  callback=request.callback, state=State.SUBMITTED, inputs=request.inputs,
                  outputs=outputs, created_at=created,
                  deadline=created + request.timeout * 1000,
                  callback_state="NONE", tenant=request.tenant)
        if not await self._store.insert_job(job, self._settings.max_open_jobs):
            raise too_many_jobs(self._settings.max_open_jobs)
        self._claims.wake.set()
        return job

    @property
    def workers(self) -> WorkerPool | None:
        """The separation workers (None on an API-only node); MIDI files are made there too."""
        return self._pipeline.pool

    def with_progress(self, job: Job) -> Job:
        """The job as shown: its progress is the row's, written by whichever node runs it."""
        return job

    async def with_queue(self, jobs: list[Job]) -> list[Job]:
        """The jobs, those waiting with their place in the queue (`queue`)."""
        if not any(job.state is State.SUBMITTED for job in jobs):
            return jobs
        entries = await self._queue.entries({j.id: j.created_at for j in jobs
                                             if j.state is State.SUBMITTED})
        return [dataclasses.replace(job, queue=entries.get(job.id)) for job in jobs]

    async def cancel(self, job: Job) -> Job:
        """CANCELED if still open; a final job is returned as it is."""
        done = await self._claims.end(job.id, State.CANCELED, "", "")
        if done is not None:
            return done
        current = await self._store.job(job.id)
        return current or job

    async def delete(self, job: Job) -> Job:
        """DeleteJob: cancel it if open, wait for its run to stop (here or on any node: its
        lease released or expired), then remove its files."""
        task = self._claims.running.get(job.id)
        if not job.state.final:
            await self._claims.end(job.id, State.CANCELED, "", "")
        if task is not None:
            await asyncio.wait([task])  # no stem is placed after the removal
        current = await self._store.job(job.id)
        end = asyncio.get_running_loop().time() + self._lease_s + 5
        while (current is not None and current.lease_until > now_ms()
               and asyncio.get_running_loop().time() < end):
            await asyncio.sleep(0.1)  # another node's run: its renewal sees the cancel
            current = await self._store.job(job.id)
        return await self.retention.delete(current or job)
