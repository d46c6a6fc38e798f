"""The job runner: claims queued jobs in order, downloads inputs, separates, finalizes.

Downloads and separations have their own slots: a job holds one of `downloads` claim loops
while its inputs arrive and until a separation worker takes it, so a slow URL never holds
a worker, and inputs are fetched ahead only that far. A node also claims no further ahead
than its free workers plus one: what it cannot start soon stays in the queue for other nodes.

Several nodes may share the store. A claim is a lease that an asyncio task renews (the CPU
work runs in worker processes, so the loop is free), writing the progress with it; a renewal
that finds the job gone from this attempt (canceled, timed out, re-claimed) stops the run.
Results are staged per attempt, committed fenced on the attempt, then published.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import aiohttp

from download.errors import DownloadError
from download.fetch import session as guarded_session
from download.links import fetch_link, read_link
from download.sites import Track
from separation.presets import shown_name
from service.blobs import patiently
from service.callbacks import Callbacks
from service.content import ContentStore, clean_path
from service.errors import (
    ApiError,
    ContentNotFound,
    JobFailure,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
)
from service.limits import too_many_jobs
from service.protocol import Job, JobRequest
from service.queue import QueueView
from service.quota import StorageQuota
from service.result_cache import CacheScope, ResultCache, Separation, input_digest
from service.retention import Retention
from service.settings import ServiceSettings
from service.store import Store, now_ms
from service.worker import ProgressMessage, Task, WorkerPool
from wire.enums import TONES, State
from wire.jobs import OutputSpec, Result

log = logging.getLogger("stembot.jobs")
T = TypeVar("T")
Separated = list[tuple[Path, Result]]  # one output's stem files in the work folder


class JobRunner:
    """`downloads` loops claim SUBMITTED jobs (none with 0 workers: an API-only node); a
    sweeper enforces deadlines, requeues expired leases and finishes half-done publishes."""

    def __init__(self, settings: ServiceSettings, store: Store, content: ContentStore,
                 callbacks: Callbacks, quota: StorageQuota) -> None:
        self._settings = settings
        self._quota = quota
        self._store = store
        self._content = content
        self._callbacks = callbacks
        self._wake = asyncio.Event()
        self._node = settings.node
        self._lease_s = settings.lease_seconds
        self._slots = asyncio.Semaphore(max(1, settings.workers))
        self._held = 0  # jobs claimed here that no worker has taken yet
        self._busy = 0  # workers separating
        self._counts_changed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, int] = {}
        # (job, attempt) whose own run began its commit: from then to the run's end it is
        # COMPLETED or about to be, its staged stems are the results, its lease no one's loss
        self._committing: set[tuple[str, int]] = set()
        # per running job: the progress (0-100) where the current separation starts, its width
        self._shares: dict[str, tuple[float, float]] = {}
        self._pool = WorkerPool(settings.models, settings.workers, settings.runtime,
                                self._on_progress) if settings.workers else None
        self._limits = settings.input_limits
        self._client: aiohttp.ClientSession | None = None
        self._queue = QueueView(store)

    async def start(self) -> None:
        self._cache = await asyncio.to_thread(
            ResultCache, self._settings.cache_dir, self._settings.result_cache,
            self._settings.models, self._store.has_files)
        await asyncio.to_thread(self._cache.clean)
        self.retention = Retention(self._settings, self._store, self._cache, self._content)
        await self.retention.start()
        self._client = guarded_session(self._limits)
        if self._pool is not None:
            self._pool.start()
        # This node's leases died with its last run: those jobs run again at once.
        for job in await self._store.recover(self._settings.max_restarts, self._node):
            self._callbacks.schedule(job)
        await self._finish_publishing()
        open_ids = await self._store.open_job_ids()
        await asyncio.to_thread(self._clean_work, open_ids)
        for job_id in set(await self._content.staged_jobs()) - open_ids:
            await self._content.unstage(job_id)  # a killed run's or a lost attempt's stems
        self._loops = [asyncio.create_task(self._claim_loop(), name=f"download-{n}")
                       for n in range(self._settings.downloads if self._pool else 0)]
        self._loops.append(asyncio.create_task(self._sweep_loop(), name="deadlines"))

    async def close(self) -> None:
        """Stop without finishing anything: open jobs go back to the queue at once (their
        leases released), for another node or the next start."""
        for task in self._loops:
            task.cancel()
        for job_id, task in list(self._running.items()):
            await asyncio.to_thread(self._touch_abort, job_id)
            task.cancel()
        await asyncio.gather(*self._loops, *self._running.values(), return_exceptions=True)
        try:
            for job in await self._store.expire_leases(self._settings.max_restarts):
                self._callbacks.schedule(job)
        except Exception:  # the database is away: the leases expire by themselves
            log.warning("could not requeue this node's jobs; their leases will expire")
        await self.retention.close()
        if self._pool is not None:
            await self._pool.close()
        if self._client is not None:
            await self._client.close()

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
        self._wake.set()
        return job

    @property
    def workers(self) -> WorkerPool | None:
        """The separation workers (None on an API-only node); MIDI files are made there too."""
        return self._pool

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
        done = await self._end(job.id, State.CANCELED, "", "")
        if done is not None:
            return done
        current = await self._store.job(job.id)
        return current or job

    async def delete(self, job: Job) -> Job:
        """DeleteJob: cancel it if open, wait for its run to stop (here or on any node: its
        lease released or expired), then remove its files."""
        task = self._running.get(job.id)
        if not job.state.final:
            await self._end(job.id, State.CANCELED, "", "")
        if task is not None:
            await asyncio.wait([task])  # no stem is placed after the removal
        current = await self._store.job(job.id)
        end = asyncio.get_running_loop().time() + self._lease_s + 5
        while (current is not None and current.lease_until > now_ms()
               and asyncio.get_running_loop().time() < end):
            await asyncio.sleep(0.1)  # another node's run: its renewal sees the cancel
            current = await self._store.job(job.id)
        return await self.retention.delete(current or job)

    # --- internals -------------------------------------------------------------------

    async def _end(self, job_id: str, state: State, code: str, message: str) -> Job | None:
        """Finalize an open job from outside its run (cancel, deadline) and stop the run."""
        job = await self._store.finish(job_id, state, error_code=code, error_message=message)
        if job is None:
            return None
        task = self._running.get(job_id)
        if task is not None:
            await asyncio.to_thread(self._touch_abort, job_id)
            task.cancel()
        self._progress.pop(job_id, None)
        self._callbacks.schedule(job)
        return job

    def _on_progress(self, message: ProgressMessage) -> None:
        job_id, _attempt, done, total = message
        share = self._shares.get(job_id)
        if share is not None and total:
            first, width = share
            self._progress[job_id] = min(99, int(first + width * done / total))

    def _job_dir(self, job_id: str) -> Path:
        return self._settings.work_dir / job_id

    def _abort_file(self, job_id: str) -> Path:
        """Its existence tells the worker to stop at the next chunk."""
        return self._job_dir(job_id) / "abort"

    def _touch_abort(self, job_id: str) -> None:
        self._job_dir(job_id).mkdir(parents=True, exist_ok=True)
        self._abort_file(job_id).touch()

    def _clean_work(self, open_ids: set[str]) -> None:
        """Remove what killed or aborted runs left behind."""
        if self._settings.work_dir.is_dir():
            for folder in self._settings.work_dir.iterdir():
                if folder.name not in open_ids:
                    shutil.rmtree(folder, ignore_errors=True)

    async def _claim_loop(self) -> None:
        """Start the next SUBMITTED job; free again once a worker took it or it ended.

        Jobs created on other nodes wake nothing here: the loop also looks every sweep."""
        while True:
            await self._room_to_claim()
            self._held += 1  # before the claim's await: the other loops see the room taken
            try:
                await self._claim_one()
            finally:
                self._held -= 1
                self._counts_changed.set()

    async def _claim_one(self) -> None:
        """Claim a job and hold it until a worker took it or it ended; or wait a sweep."""
        self._wake.clear()  # before the claim: a job submitted after it sets it again
        try:
            job = await self._store.claim_next(self._node, self._lease_s)
        except Exception:  # the database is away for longer than the store retries
            log.exception("claiming a job failed")
            job = None
        if job is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self._settings.sweep_interval, 0.2)):
                    await self._wake.wait()
            return
        # which node ran which attempt: the log is where an operator looks for it
        log.info("job %s attempt %d: claimed by %s", job.id, job.attempt, self._node)
        handed_over = asyncio.Event()
        task = asyncio.create_task(self._leased(job, handed_over), name=f"job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id, handed_over))
        await handed_over.wait()

    async def _room_to_claim(self) -> None:
        """Wait until jobs held before a worker (`_held`) are fewer than free workers + 1.

        Celery's advice for long tasks, prefetch little: one idle worker's node takes two
        jobs (a slow download cannot stall it), a busy node takes one ahead, and the rest
        of the queue is left to nodes whose workers are idle.
        """
        while self._held >= self._settings.workers - self._busy + 1:
            self._counts_changed.clear()
            await self._counts_changed.wait()

    def _forget(self, job_id: str, handed_over: asyncio.Event, task: asyncio.Task[None]
                ) -> None:
        self._running.pop(job_id, None)
        handed_over.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s: runner failed", job_id, exc_info=task.exception())

    async def _sweep_loop(self) -> None:
        """Every node's duties, idempotent: deadlines, expired leases, orphaned publishes."""
        while True:
            try:
                for job_id in await self._store.overdue(now_ms()):
                    await self._end(job_id, State.ERROR, "TIMEOUT",
                                    "the job did not finish before its timeout")
                for job in await self._store.expire_leases(self._settings.max_restarts):
                    self._callbacks.schedule(job)
                await self._finish_publishing()
            except Exception:  # the database is away: try again at the next sweep
                log.exception("sweep failed")
            self._wake.set()  # and look for jobs other nodes created
            await asyncio.sleep(self._settings.sweep_interval)

    async def _leased(self, job: Job, handed_over: asyncio.Event) -> None:
        """Run the attempt while a task renews its lease; give the lease back at its end."""
        run = asyncio.current_task()
        assert run is not None
        keeper = asyncio.create_task(self._keep_lease(job, run), name=f"lease-{job.id}")
        try:
            await self._run(job, handed_over)
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
                                               self._progress.get(job.id, 0))
            except Exception:
                log.warning("job %s: lease renewal failed", job.id, exc_info=True)
                continue
            if not held and (job.id, job.attempt) in self._committing:
                return  # it left PROCESSING by this run's own commit
            if not held:
                log.info("job %s attempt %d: no longer this run's; stopping it", job.id,
                         job.attempt)
                await asyncio.to_thread(self._touch_abort, job.id)
                run.cancel()
                return

    async def _run(self, job: Job, handed_over: asyncio.Event) -> None:
        """One attempt at a job; cancellation leaves the DB to whoever cancelled. Every write
        is fenced on the attempt: one that lost its lease changes nothing."""
        current = await self._store.job(job.id)
        if (current is None or current.state is not State.PROCESSING
                or current.attempt != job.attempt):
            return  # canceled between its claim and now
        self._progress[job.id] = 0
        work = self._job_dir(job.id) / f"attempt-{job.attempt}"
        await asyncio.to_thread(self._reset_dir, job.id, work)
        try:
            done = await self._process(job, work, handed_over)
        except JobFailure as failure:  # before any commit: what this attempt staged goes
            await self._discard(job)
            done = await self._store.finish(job.id, State.ERROR, error_code=failure.code,
                                            error_message=failure.message,
                                            attempt=job.attempt)
        except asyncio.CancelledError:
            # Once its commit began, the attempt may be COMPLETED and publishing: its staged
            # stems are the results (a sweep publishes them), never to be thrown away here.
            if (job.id, job.attempt) not in self._committing:
                await asyncio.shield(self._discard(job))
            raise
        except Exception as error:  # a bug must still end the job, with a reason
            log.exception("job %s failed", job.id)
            # The type only: an exception's text can hold server paths; the log has it all.
            done = await self._store.finish(
                job.id, State.ERROR, error_code="INTERNAL_ERROR",
                error_message=f"internal error ({type(error).__name__}); see the service log",
                attempt=job.attempt)
        finally:
            self._progress.pop(job.id, None)
            self._shares.pop(job.id, None)
            self._committing.discard((job.id, job.attempt))
        if done is not None:
            self._callbacks.schedule(done)
        await asyncio.to_thread(shutil.rmtree, self._job_dir(job.id), True)

    async def _commit(self, job: Job, outputs: tuple[OutputSpec, ...]) -> Job | None:
        """COMPLETED, fenced on the attempt, then the staged stems move into place; a stale
        attempt's commit fails and it removes its own staging (the winner's files stay)."""
        self._committing.add((job.id, job.attempt))
        done = await self._store.finish(job.id, State.COMPLETED, outputs=outputs,
                                        attempt=job.attempt, publishing=True,
                                        lease_s=self._lease_s)
        if done is None:  # a commit whose answer was lost with its connection, retried?
            current = await self._store.job(job.id)
            if current is not None and current.attempt == job.attempt and current.publishing:
                done = current
        if done is not None:
            return await self._publish(done)
        log.info("job %s attempt %d: another run ended the job; discarding its stems",
                 job.id, job.attempt)
        await self._discard(job)
        return None

    async def _discard(self, job: Job) -> None:
        """Remove what the attempt staged, if the store lets us now: else a later start or
        the job's removal does it (nothing staged is ever served or published)."""
        try:
            await self._content.unstage(job.id, job.attempt)
        except Exception:
            log.warning("job %s attempt %d: its staged stems stay for now", job.id, job.attempt)

    async def _publish(self, job: Job, patient: bool = True) -> Job | None:
        """Move the attempt's staged stems to their destinations, then show it COMPLETED;
        idempotent, so any node can finish a publish a dead node left half-done. A store
        outage leaves it publishing: a sweep finishes it once the publisher's lease ended."""
        for number, output in enumerate(job.outputs):
            destination = clean_path(output.destination, "destination", root_slash=True)
            for result in output.results or ():
                move = functools.partial(self._content.publish, job.id, job.attempt, number,
                                         output.content_id, destination, result.file_name)
                try:
                    await (self._patient(move) if patient else move())
                except (JobFailure, StorageUnavailable):
                    log.warning("job %s: the object store is away; its publish waits", job.id)
                    return None
                except ApiError as refused:  # the tree changed since the job was staged
                    log.warning("job %s: %s not published: %s", job.id, result.file_name,
                                refused.message)
                except Exception:  # refused for good (a 403, a read-only disk): not retried
                    log.exception("job %s: %s not published", job.id, result.file_name)
        await self._content.unstage(job.id, job.attempt)
        return await self._store.published(job.id)

    async def _finish_publishing(self) -> None:
        for job in await self._store.unpublished(now_ms()):
            log.info("job %s: finishing the publish of its stems", job.id)
            try:
                done = await self._publish(job, patient=False)
            except Exception:  # this job's fault must not hold up the others' publishes
                log.exception("job %s: finishing its publish failed", job.id)
                continue
            if done is not None:
                self._callbacks.schedule(done)

    def _reset_dir(self, job_id: str, work: Path) -> None:
        """A fresh folder per attempt; a stale abort file from an earlier run is removed."""
        self._abort_file(job_id).unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        work.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True)

    async def _process(self, job: Job, work: Path, handed_over: asyncio.Event
                       ) -> Job | None:
        await self._check_room(job.owner)
        inputs = _Inputs(self, job, work)
        keys: dict[tuple[int, int], str | None] = {}
        for index in range(len(job.inputs)):
            # A known site's song is named by its site and id (one entry whatever the link's
            # form), read from the metadata; any other input by its bytes. Only an input
            # whose stems are not all in the cache is downloaded (before any worker is held).
            song = await inputs.song(index)
            own = self._keys(job, index, song)
            if song is None or not all([await self._cache.has(k) for k in own.values()]):
                path = await inputs.path(index)
                own = self._keys(job, index, song or await asyncio.to_thread(input_digest, path))
            keys.update(own)
        if all([await self._cache.has(key) for key in keys.values()]):
            handed_over.set()  # nothing to separate: no worker to wait for
            separated = await self._separate_all(job, work, inputs, keys)
        else:
            async with self._slots:
                self._busy += 1
                handed_over.set()
                try:
                    separated = await self._separate_all(job, work, inputs, keys)
                finally:
                    self._busy -= 1
                    self._counts_changed.set()
        return await self._deliver_all(job, separated)

    def _keys(self, job: Job, index: int, song: str | None) -> dict[tuple[int, int], str | None]:
        """The cache entries of one input, one per output that selects it."""
        return {(n, index): self._cache.key(job.owner, song, self._separation(output))
                if song is not None else None
                for n, output in enumerate(job.outputs) if index in output.selectors}

    def _separation(self, output: OutputSpec) -> Separation:
        runtime = self._settings.runtime
        return Separation(int(output.method), output.shifts, self._settings.output_format.value,
                          f"{runtime.runtime.value} {runtime.precision.value}")

    async def _check_room(self, owner: str) -> None:
        """A key whose repositories are full already gets no separation it cannot keep."""
        used = await self._patient(lambda: self._quota.used(owner))
        if used >= self._quota.limit:
            raise JobFailure("QUOTA_EXCEEDED", f"this key's repositories already hold {used}"
                             f" bytes, at their {self._quota.limit} byte limit")

    async def _deliver_all(self, job: Job, separated: list[tuple[OutputSpec, Separated]]
                           ) -> Job | None:
        """All results or none: the quota is checked for their sum before the first moves;
        the committed job, or None if this attempt lost it."""
        paths = [path for _, results in separated for path, _ in results]
        try:
            await self.retention.check_room("the results")
        except StorageFull as error:
            raise JobFailure(error.code, error.message) from None
        size = sum(await asyncio.to_thread(lambda: [p.stat().st_size for p in paths]))

        async def stage_all() -> tuple[OutputSpec, ...]:
            async with self._quota.reserve(job.owner, f"the results ({size} bytes)") as add:
                add(size)
                return tuple([await self._stage(job, number, out, results)
                              for number, (out, results) in enumerate(separated)])

        try:
            outputs = await self._patient(stage_all)  # a retry only re-reads the stored bytes
        except QuotaExceeded as error:
            raise JobFailure(error.code, error.message) from None
        return await self._commit(job, outputs)

    async def _patient(self, call: Callable[[], Awaitable[T]]) -> T:
        """A job's storage call, waiting out an unreachable object store for up to
        STEMBOT_S3_RETRY_SECONDS; past that the job ends in ERROR STORAGE_UNAVAILABLE."""
        window = self._settings.s3_retry_seconds
        try:
            return await patiently(window, call)
        except StorageUnavailable as error:
            raise JobFailure(error.code, f"the object store could not be reached for {window:g}"
                             " s (STEMBOT_S3_RETRY_SECONDS); the job's files could not be"
                             " read or written") from None

    async def _separate_all(self, job: Job, work: Path, inputs: _Inputs,
                            keys: dict[tuple[int, int], str | None]
                            ) -> list[tuple[OutputSpec, Separated]]:
        """Every output's stems, in the work folder; progress is the share of runs done."""
        pairs = sum(len(o.selectors) for o in job.outputs)
        separated: list[tuple[OutputSpec, Separated]] = []
        done = 0
        for number, output in enumerate(job.outputs):
            results: list[tuple[Path, Result]] = []
            facts: list[dict[str, Any]] = []
            for selector in output.selectors:
                self._shares[job.id] = (100 * done / pairs, 100 / pairs)
                out_dir = work / f"out-{number}-{selector}"
                stems, song = await self._separate(job, output, selector, inputs, out_dir,
                                                   keys[number, selector])
                results += stems
                facts.append(song)
                done += 1
            separated.append((dataclasses.replace(output, facts=tuple(facts)), results))
        return separated

    async def _read(self, job: Job, index: int) -> Track | None:
        """A known site's track from its link's metadata, where the cache can use it."""
        url = job.inputs[index].url
        if not url or self._settings.result_cache is CacheScope.OFF:
            return None
        try:
            return await read_link(url, self._limits, self._settings.link_rules)
        except DownloadError as failed:
            raise JobFailure(failed.code, failed.message) from None

    async def _input(self, job: Job, index: int, work: Path) -> tuple[Path, Track | None]:
        """The input's file in the work folder (or the repository's own), and for a page
        link what the page said of its track."""
        spec = job.inputs[index]
        if spec.url:
            assert self._client is not None
            target = work / f"input-{index}"
            try:
                track = await fetch_link(self._client, spec.url, target, self._limits,
                                         self._settings.link_rules)
            except DownloadError as failed:
                raise JobFailure(failed.code, failed.message) from None
            return target, track
        try:
            await self._content.readable(job.owner, spec.content_id)
            rel = clean_path(spec.path, "path", root_slash=True)
            await self._patient(lambda: self._content.existing_file(spec.content_id, rel))
            # the repository's own file where it is local, else a download into the work folder
            return await self._patient(lambda: self._content.local_copy(
                spec.content_id, rel, work / f"input-{index}")), None
        except ApiError as refused:  # the file can vanish between CreateJob and the run
            code = "INPUT_NOT_FOUND" if isinstance(refused, ContentNotFound) else refused.code
            raise JobFailure(code, f"inputs[{index}]: {refused.message}") from None

    async def _separate(self, job: Job, output: OutputSpec, selector: int, inputs: _Inputs,
                        out_dir: Path, key: str | None
                        ) -> tuple[list[tuple[Path, Result]], dict[str, Any]]:
        """One input through one output's method, from the cache or by a worker: the stems to
        place and the song's facts."""
        found = await self._cache.take(key, out_dir)
        cached = found is not None
        if found is None:  # (an entry gone since it was seen is downloaded for now)
            source = await inputs.path(selector)
            found = await self._run_worker(job, output, selector, source, out_dir)
            await self._cache.keep(key, *found, job.id)
        stems, facts = found
        preset = output.method
        # named here, not by the file: a cache entry of an older version says `other.wav`
        return [(path, Result(TONES[stem], f"{job.id}-{selector}-{shown_name(preset, stem)}"
                              f"{path.suffix}", cached))
                for stem, path in stems.items()], facts

    async def _run_worker(self, job: Job, output: OutputSpec, selector: int, source: Path,
                          out_dir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
        preset = output.method
        assert self._pool is not None, "an API-only node claims no job"
        outcome = await self._pool.run(Task(
            job_id=job.id, attempt=job.attempt, source=source, out_dir=out_dir,
            method=int(preset), fmt=self._settings.output_format.value,
            max_seconds=self._settings.max_seconds, max_bytes=self._settings.max_bytes,
            abort_file=self._abort_file(job.id), shifts=output.shifts))
        if outcome.error_code:
            raise JobFailure(outcome.error_code, f"inputs[{selector}]: {outcome.error_message}")
        assert outcome.facts is not None, "a separation without an error has facts"
        return outcome.stems, outcome.facts

    async def _stage(self, job: Job, number: int, output: OutputSpec,
                     results: list[tuple[Path, Result]]) -> OutputSpec:
        """The output's stems to the attempt's staging place; their destinations checked now,
        so that a file in the way fails the job before it is committed."""
        destination = clean_path(output.destination, "destination", root_slash=True)
        for path, result in results:
            rel = str(PurePosixPath(destination, result.file_name)) if destination else \
                result.file_name
            try:
                await self._content.check_writable(output.content_id, rel, folder=False,
                                                   name="destination")
                await self._content.stage(job.id, job.attempt, number, result.file_name, path)
            except ApiError as refused:  # the tree changed since CreateJob checked it
                raise JobFailure(refused.code, refused.message) from None
        return dataclasses.replace(output, results=tuple(r for _, r in results))


class _Inputs:
    """One run's inputs: each downloaded (or found) at most once, when first needed; a page
    link's track is recorded on the job as soon as it is known, so the title and uploader
    travel with the job (GetJob, ListJobs, callbacks)."""

    def __init__(self, runner: JobRunner, job: Job, work: Path) -> None:
        self._runner = runner
        self._job = job
        self._work = work
        self._specs = list(job.inputs)
        self._paths: dict[int, Path] = {}
        self._songs: dict[int, str | None] = {}

    async def song(self, index: int) -> str | None:
        """`site:id` of a known site's link (its metadata read once), else None."""
        if index not in self._songs:
            track = await self._runner._read(self._job, index)
            await self._note(index, track)
            self._songs[index] = track.cache_name if track else None
        return self._songs[index]

    async def path(self, index: int) -> Path:
        if index not in self._paths:
            self._paths[index], track = await self._runner._input(self._job, index, self._work)
            await self._note(index, track)
        return self._paths[index]

    async def _note(self, index: int, track: Track | None) -> None:
        spec = self._specs[index]
        if track is None or spec.track == track.wire():
            return
        self._specs[index] = dataclasses.replace(spec, track=track.wire())
        await self._runner._store.set_inputs(self._job.id, self._job.attempt,
                                             tuple(self._specs))
