"""Running one claimed job: its inputs, separation through the worker pool (or the result
cache), then commit, publish or discard.

Fencing, the rules every write here keeps (the claim loop, `service.claims`, holds the lease):

- Every attempt at a job has its own number (`attempt`), and each store write of a run is
  fenced on it: a write from an attempt that lost its lease (canceled, timed out, re-claimed
  after its lease expired) changes nothing.
- Results are staged per attempt, then committed: COMPLETED, fenced on the attempt, with the
  `publishing` flag set. A stale attempt's commit fails and it removes its own staging (the
  winner's files stay). Once its commit began, an attempt's staged stems are the results, and
  its lease ending is no one's loss: they are never thrown away by that run.
- Publishing moves the committed attempt's staged stems to their destinations and then clears
  the flag; it is idempotent, so any node can finish a publish a dead node left half-done (a
  sweep does, once the publisher's lease ended). Nothing staged is ever served or published
  otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import shutil
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
from service.claims import Capacity
from service.content import ContentStore, clean_path
from service.errors import (
    ApiError,
    ContentNotFound,
    JobFailure,
    QuotaExceeded,
    StorageFull,
    StorageUnavailable,
)
from service.protocol import Job
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


class Pipeline:
    """One attempt at a job, from its inputs to its published results (see the module's
    fencing rules); the claim loop calls `run` while it holds the job's lease."""

    def __init__(self, settings: ServiceSettings, store: Store, content: ContentStore,
                 callbacks: Callbacks, quota: StorageQuota, capacity: Capacity) -> None:
        self._settings = settings
        self._quota = quota
        self._store = store
        self._content = content
        self._callbacks = callbacks
        self._capacity = capacity
        self._lease_s = settings.lease_seconds
        self.progress: dict[str, int] = {}
        # (job, attempt) whose own run began its commit: from then to the run's end it is
        # COMPLETED or about to be, its staged stems are the results, its lease no one's loss
        self.committing: set[tuple[str, int]] = set()
        # per running job: the progress (0-100) where the current separation starts, its width
        self._shares: dict[str, tuple[float, float]] = {}
        self.pool = WorkerPool(settings.models, settings.workers, settings.runtime,
                               self._on_progress) if settings.workers else None
        self._limits = settings.input_limits
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._cache = await asyncio.to_thread(
            ResultCache, self._settings.cache_dir, self._settings.result_cache,
            self._settings.models, self._store.has_files)
        await asyncio.to_thread(self._cache.clean)
        self.retention = Retention(self._settings, self._store, self._cache, self._content)
        await self.retention.start()
        self._client = guarded_session(self._limits)
        if self.pool is not None:
            self.pool.start()

    async def close(self) -> None:
        """After the runs stopped: the retention, the workers, the download session."""
        await self.retention.close()
        if self.pool is not None:
            await self.pool.close()
        if self._client is not None:
            await self._client.close()

    def _on_progress(self, message: ProgressMessage) -> None:
        job_id, _attempt, done, total = message
        share = self._shares.get(job_id)
        if share is not None and total:
            first, width = share
            self.progress[job_id] = min(99, int(first + width * done / total))

    def _job_dir(self, job_id: str) -> Path:
        return self._settings.work_dir / job_id

    def _abort_file(self, job_id: str) -> Path:
        """Its existence tells the worker to stop at the next chunk."""
        return self._job_dir(job_id) / "abort"

    def touch_abort(self, job_id: str) -> None:
        self._job_dir(job_id).mkdir(parents=True, exist_ok=True)
        self._abort_file(job_id).touch()

    def clean_work(self, open_ids: set[str]) -> None:
        """Remove what killed or aborted runs left behind."""
        if self._settings.work_dir.is_dir():
            for folder in self._settings.work_dir.iterdir():
                if folder.name not in open_ids:
                    shutil.rmtree(folder, ignore_errors=True)

    async def run(self, job: Job, handed_over: asyncio.Event) -> None:
        """One attempt at a job, its writes fenced (the module's rules); cancellation leaves
        the DB to whoever cancelled."""
        current = await self._store.job(job.id)
        if (current is None or current.state is not State.PROCESSING
                or current.attempt != job.attempt):
            return  # canceled between its claim and now
        self.progress[job.id] = 0
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
            if (job.id, job.attempt) not in self.committing:
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
            self.progress.pop(job.id, None)
            self._shares.pop(job.id, None)
            self.committing.discard((job.id, job.attempt))
        if done is not None:
            self._callbacks.schedule(done)
        await asyncio.to_thread(shutil.rmtree, self._job_dir(job.id), True)

    async def commit(self, job: Job, outputs: tuple[OutputSpec, ...]) -> Job | None:
        """Commit the attempt, then publish it: the published job, or None if this attempt
        lost the job (the module's fencing rules)."""
        self.committing.add((job.id, job.attempt))
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
        """Move the committed attempt's staged stems to their destinations, then show it
        COMPLETED (the module's fencing rules); a store outage leaves it publishing."""
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

    async def finish_publishing(self) -> None:
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
            async with self._capacity.slots:
                self._capacity.busy += 1
                handed_over.set()
                try:
                    separated = await self._separate_all(job, work, inputs, keys)
                finally:
                    self._capacity.busy -= 1
                    self._capacity.changed.set()
        return await self._deliver_all(job, separated)

    def _keys(self, job: Job, index: int, song: str | None) -> dict[tuple[int, int], str | None]:
        """The cache entries of one input, one per output that selects it."""
        return {(n, index): self._cache.key(job.owner, song, self._separation(output))
                if song is not None else None
                for n, output in enumerate(job.outputs) if index in output.selectors}

    def _separation(self, output: OutputSpec) -> Separation:
        runtime = self._settings.runtime
        return Separation(int(output.method), output.shifts, self._settings.output_format.value,
                          f"{runtime.runtime.value} {runtime.precision.value}"
                          f" overlap {runtime.overlap:g}")

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
        return await self.commit(job, outputs)

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
        assert self.pool is not None, "an API-only node claims no job"
        outcome = await self.pool.run(Task(
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

    def __init__(self, runner: Pipeline, job: Job, work: Path) -> None:
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
