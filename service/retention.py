"""Retention: DeleteJob, STEMBOT_RESULT_TTL expiry, and the disk guard's free-space reading.

A removal survives a kill at any point because it goes in three steps: (1) one transaction
marks the jobs deleted or expired, `purging`, and lists their files as gone, so from then on
nothing serves them (410 Gone) and no cache hit uses them; (2) their cache entries, result
files and work folders are removed; (3) the `purging` mark is cleared. A start finishes
every job still marked, so no record is ever left pointing at half its files.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path, PurePosixPath

from service import player_mixes
from service.content import ContentStore, clean_path
from service.errors import StorageFull
from service.protocol import Job
from service.result_cache import ResultCache
from service.settings import ServiceSettings
from service.store import Gone, Store, now_ms
from wire.enums import State

log = logging.getLogger("stembot.retention")
BATCH = 200  # jobs expired per transaction


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the data folder's disk; None where free space is not measured."""
    return shutil.disk_usage(folder).free


async def job_files(content: ContentStore, job: Job) -> list[Gone]:
    """The job's result files: those its record names, and for a job that did not complete
    any `<job id>-*` file in its destinations (a run stopped while delivering leaves some)."""
    found: dict[tuple[str, str], Gone] = {}
    for output in job.outputs:
        destination = clean_path(output.destination, "destination", root_slash=True)
        names = [r.file_name for r in output.results or ()]
        if job.state is not State.COMPLETED:  # a scan costs a whole folder: only when needed
            names += await content.job_names(output.content_id, destination, f"{job.id}-")
        for name in names:
            rel = str(PurePosixPath(destination, name)) if destination else name
            found[output.content_id, rel] = Gone(output.content_id, rel)
    return list(found.values())


class Retention:
    """Removes jobs' files on DeleteJob and after the TTL; one sweeper task for the TTL."""

    def __init__(self, settings: ServiceSettings, store: Store, cache: ResultCache,
                 content: ContentStore) -> None:
        self._settings = settings
        self._content = content
        self._store = store
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self._sweeping = asyncio.Lock()

    async def start(self) -> None:
        """Finish removals a kill interrupted, then expire on schedule."""
        await self._finish()
        if self._settings.result_ttl > 0:
            self._task = asyncio.create_task(self._sweep_loop(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def delete(self, job: Job) -> Job:
        """Remove a final job's files now; the record stays, with `deleted_at`. A removal that
        an object-store outage cut short (503) is finished by the next DeleteJob."""
        if not await self._remove([job], "deleted_at"):
            await self._finish({job.id})
        return await self._store.job(job.id) or job

    async def sweep(self) -> int:
        """Expire every job whose files outlived the TTL; how many were expired."""
        if self._settings.result_ttl <= 0:
            return 0
        total = 0
        async with self._sweeping:
            await self._finish()  # expiries an object-store outage cut short
            while True:
                ended = now_ms() - self._settings.result_ttl * 1000
                jobs = await self._store.expirable(ended, BATCH)
                total += len(await self._remove(jobs, "expired_at"))
                if len(jobs) < BATCH:
                    return total

    async def check_room(self, what: str) -> None:
        """StorageFull when the disk is under STEMBOT_MIN_FREE_BYTES, even after a sweep."""
        free = await self._free()
        if free is None or free >= self._settings.min_free_bytes:
            return
        await self.sweep()
        free = await self._free()
        if free is not None and free < self._settings.min_free_bytes:
            raise StorageFull(
                f"{what}: the server's disk has {free} bytes free, under its"
                f" {self._settings.min_free_bytes} byte minimum (STEMBOT_MIN_FREE_BYTES);"
                " try again once older results expire or are deleted")

    async def _free(self) -> int | None:
        return await asyncio.to_thread(free_bytes, self._settings.data_dir)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a failed sweep is retried; the service keeps answering
                log.exception("result expiry sweep failed")
            await asyncio.sleep(self._settings.sweep_interval)

    async def _files(self, job: Job) -> list[Gone]:
        """The job's result files and the mixes made from them."""
        mixes = [Gone(mix.content_id, mix.path) for mix in await self._store.mixes_of(job.id)]
        return await job_files(self._content, job) + mixes

    async def _remove(self, jobs: list[Job], column: str) -> list[Job]:
        files = {job.id: await self._files(job) for job in jobs}
        marked = await self._store.mark_gone([job.id for job in jobs], column, files)
        await self._purge(marked, files)
        return marked

    async def _finish(self, only: set[str] | None = None) -> None:
        jobs = [job for job in await self._store.purging() if only is None or job.id in only]
        files = {job.id: await self._store.gone_files(job.id) + await self._files(job)
                 for job in jobs}
        if jobs:
            log.info("finishing the removal of %d jobs' files", len(jobs))
        await self._purge(jobs, files)

    async def _purge(self, jobs: list[Job], files: dict[str, list[Gone]]) -> None:
        if not jobs:
            return
        for job in jobs:
            await self._cache.forget(job.id)
        for gone in [gone for job in jobs for gone in files.get(job.id, [])]:
            await self._content.remove(gone.content_id, gone.path)
        for job in jobs:
            await asyncio.to_thread(shutil.rmtree, self._settings.work_dir / job.id, True)
            # this node's cached player mixes; other nodes' age out of their caches
            await asyncio.to_thread(player_mixes.forget, self._settings.player_mix_dir, job.id)
            await self._content.unstage(job.id)  # what a stopped run had staged
        await self._store.purged([job.id for job in jobs])
