"""Follow each job from submission to delivery: callbacks when they come, polling always."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import discord

from bot.delivery import Delivery
from bot.jobapi import ApiError, Job, JobApi, ServiceUnreachableError
from bot.messages import plain, queue_note
from bot.status import StatusMessages
from separation import SeparationError
from separation.presets import StemPreset
from storage import JobRecord, JobState, JobStore
from wire.enums import State
from wire.jobs import InputSpec

log = logging.getLogger(__name__)

# Polling an answering service: fast while the percentage moves, never slower than the
# status throttle, so that a short "separating" phase is not missed while a job waits in
# the queue. An unreachable service is retried with exponential backoff instead.
POLL_MIN = 2.0
POLL_MAX = 5.0
RETRY_MAX = 60.0
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
MEDIA_EXTENSIONS = frozenset((".aac", ".aif", ".aiff", ".flac", ".m4a", ".mka", ".mkv", ".mp3",
                              ".mp4", ".oga", ".ogg", ".opus", ".wav", ".webm", ".wma"))


class JobTracker:
    """One follower task per unfinished job; finishing is locked, so it happens once."""

    def __init__(
        self, api: JobApi, jobs: JobStore, delivery: Delivery, status: StatusMessages,
        callback_base: str, job_timeout: int,
    ) -> None:
        self._api = api
        self._jobs = jobs
        self._delivery = delivery
        self._status = status
        self.callback_base = callback_base
        self._job_timeout = job_timeout
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._pushed: dict[int, Job] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._queues: dict[int, str] = {}  # the place in the queue last shown (queue_note)
        self._started = time.time()

    async def submit(self, record: JobRecord, checked: Path) -> JobRecord | None:
        """Upload the checked file, then CreateJob from it; on refusal the record fails and
        the error is raised.

        None when the record ended meanwhile (a `/job cancel` during the download): then
        nothing is submitted, or a job created in the meantime is canceled at the service.
        """
        current = await self._jobs.require(record.id)
        if current.state.final:
            return None
        try:
            # The service separates these bytes, not a second download of the member's link,
            # which could be another, larger or longer file.
            await self._api.upload(self._source(record), checked)
            job = await self._create(record)
        except ApiError as error:
            unreachable = isinstance(error, ServiceUnreachableError)
            await self.fail(record, str(error) if unreachable
                            else f"the separation service refused the job: {error}")
            if not unreachable:  # refused: no job reads the upload (unreachable: one may)
                await self.remove_upload(record)
            raise
        return await self._queued(record, job)

    def _source(self, record: JobRecord) -> InputSpec:
        return InputSpec(content_id=self._api.content_id, path=input_path(record),
                         track=track_label(record))

    async def _create(self, record: JobRecord) -> Job:
        callback = self.callback_base + record.callback_token if self.callback_base else ""
        return await self._api.create_job(
            self._source(record), StemPreset.from_count(record.stems), custom_id=record.custom_id,
            callback=callback, timeout_s=self._job_timeout, shifts=record.shifts,
            tenant=str(record.guild_id),  # the service shares its workers fairly by server
        )

    async def _queued(self, record: JobRecord, job: Job) -> JobRecord | None:
        """Record the service's job; if the record was canceled meanwhile, cancel the job."""
        queued = await self._jobs.update_active(record.id, service_job_id=job.id,
                                                state=JobState.QUEUED)
        if queued is None:
            # Canceled while CreateJob was on its way: keep the id, stop the service's job.
            await self._jobs.update(record.id, service_job_id=job.id)
            await self.cancel_orphan(job.id)
            await self.remove_upload(record)
        return queued

    async def cancel_orphan(self, job_id: str) -> None:
        """CancelJob for a service job whose record already ended; errors are only logged."""
        try:
            await self._api.cancel_job(job_id)
        except ApiError as error:
            log.warning("service job %s: could not cancel it: %s", job_id, error)

    def follow(self, record_id: int) -> None:
        task = self._tasks.get(record_id)
        if task is None or task.done():
            self._wake.setdefault(record_id, asyncio.Event())
            self._tasks[record_id] = asyncio.create_task(self._guarded(record_id))

    async def on_callback(self, record: JobRecord, job: Job) -> None:
        """A verified callback: wake the follower (or start one, e.g. just after a restart)."""
        self._pushed[record.id] = job
        self.follow(record.id)
        self._wake[record.id].set()

    async def reconcile(self) -> int:
        """Follow every job that was not final when the bot stopped; return how many."""
        # A /separate of this run may be checking its input right now: its CreateJob is its
        # own to send, and a second one here would duplicate the job.
        records = [r for r in await self._jobs.unfinished() if r.created_at < self._started]
        for record in records:
            self.follow(record.id)
        return len(records)

    async def wait(self, record_id: int) -> None:
        """Until the job's follower ends (tests and shutdown)."""
        task = self._tasks.get(record_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _guarded(self, record_id: int) -> None:
        """Follow the job; a bug must end it with a message, not leave it hanging."""
        try:
            await self._follow(record_id)
        except Exception as error:
            log.exception("job %s: following it failed", record_id)
            with contextlib.suppress(Exception):
                record = await self._jobs.require(record_id)
                await self.fail(record, f"the bot failed internally ({type(error).__name__}:"
                                f" {error}); please try again")
        finally:
            # The follower is done with this record: drop its entries, so they do not pile
            # up one per job. A later callback starts a fresh follower, which ends at once.
            if self._tasks.get(record_id) is asyncio.current_task():
                del self._tasks[record_id]
            self._wake.pop(record_id, None)
            self._pushed.pop(record_id, None)
            self._locks.pop(record_id, None)
            self._queues.pop(record_id, None)

    async def _follow(self, record_id: int) -> None:
        delay = POLL_MIN
        while True:
            record = await self._jobs.require(record_id)
            if record.state.final:
                return
            try:
                job = self._pushed.pop(record_id, None) or await self._poll(record)
            except ServiceUnreachableError as error:
                if time.time() - record.created_at > self._job_timeout + 600:
                    await self.fail(record, f"gave up: {error}")
                    return
                log.info("job %s: %s; retrying in %.0f s", record_id, error, delay)
                delay = min(delay * 2, RETRY_MAX)
            except ApiError as error:
                await self.fail(record, f"the separation service answered: {error}")
                return
            else:
                if job is None:
                    return
                if job.state.final:
                    await self._finish(record_id, job)
                    return
                delay = await self._progress(record, job, delay)
            await self._sleep(record_id, delay)

    async def _poll(self, record: JobRecord) -> Job | None:
        if record.service_job_id is not None:
            return await self._api.get_job(record.service_job_id)
        # Stopped between CreateJob and saving its answer: the customId finds the job. The
        # newest: older ones with the same customId are an earlier bot database's.
        found = await self._api.newest_job(record.custom_id)
        if found is not None:
            await self._jobs.update(record.id, service_job_id=found.id)
            return found
        return await self._resume(record)

    async def _resume(self, record: JobRecord) -> Job | None:
        """Stopped before CreateJob: submit the upload, if it was complete (uploads are atomic)."""
        try:
            job = await self._create(record)
        except ApiError as error:
            if error.code != "CONTENT_NOT_FOUND":
                raise
            await self.fail(record, "the bot restarted before the job reached the service;"
                             " please run /separate again")
            return None
        return job if await self._queued(record, job) is not None else None

    async def _progress(self, record: JobRecord, job: Job, delay: float) -> float:
        """Show SUBMITTED/PROCESSING; poll faster while the progress moves."""
        state = JobState.SEPARATING if job.state is State.PROCESSING else JobState.QUEUED
        same_state = state is record.state
        note = queue_note(job.queue) if state is JobState.QUEUED else ""
        changed = not same_state or job.progress != record.progress
        moved = changed or note != self._queues.get(record.id, "")
        if moved:
            if changed:
                record = await self._jobs.update(record.id, state=state, progress=job.progress)
            # A new state shows at once; a new percentage or place in the queue waits out
            # the edit throttle (a held-back place is not taken as shown: it shows later).
            if await self._status.show(record, progress_only=same_state, queue=note):
                self._queues[record.id] = note
        return POLL_MIN if moved else min(delay * 1.5, POLL_MAX)

    async def _sleep(self, record_id: int, delay: float) -> None:
        wake = self._wake[record_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=delay)
        wake.clear()

    async def _finish(self, record_id: int, job: Job) -> None:
        lock = self._locks.setdefault(record_id, asyncio.Lock())
        async with lock:
            record = await self._jobs.require(record_id)
            if record.state.final:
                return
            if job.state is State.COMPLETED:
                await self._deliver(record, job)
            elif job.state is State.CANCELED:
                await self.end(record, JobState.CANCELED, record.error)
            else:
                reason = job.error_message or "the service gave no reason"
                await self.fail(record, reason)
            await self.remove_upload(record)  # the service job is final: nothing reads it

    async def _deliver(self, record: JobRecord, job: Job) -> None:
        record = await self._jobs.update(record.id, state=JobState.UPLOADING, progress=100)
        await self._status.show(record)
        try:
            await self._delivery.deliver(record, job)
        except (ApiError, SeparationError, discord.HTTPException, OSError) as error:
            await self.fail(record, f"could not deliver the stems: {error}")
            return
        await self.end(record, JobState.DONE, None)

    async def fail(self, record: JobRecord, reason: str) -> None:
        """End the job as FAILED, with the reason in its reply and its thread."""
        await self.end(record, JobState.FAILED, reason)
        if record.thread_id:
            try:
                thread = self._delivery.destination(record)
                await thread.send(f"❌ job #{record.id} failed: {plain(reason)}")
            except discord.HTTPException as error:
                log.warning("job %s: could not post the failure: %s", record.id, error)

    async def end(self, record: JobRecord, state: JobState, error: str | None) -> None:
        """Move the job to a final state once, and show it."""
        if await self._jobs.finish(record.id, state, error):
            await self._status.show(await self._jobs.require(record.id))

    async def remove_upload(self, record: JobRecord) -> None:
        """The checked input the bot uploaded is its own file, which the service's TTL does
        not cover: it goes once no service job can still read it."""
        try:
            await self._api.delete_content(self._source(record))
        except ApiError as error:
            log.warning("job %s: could not remove its upload: %s", record.id, error)


def input_path(record: JobRecord) -> str:
    """Where the record's checked input goes in the bot's repository: a path of its own, which
    the next start finds again from the record alone."""
    last = unquote(urlsplit(record.input_url).path.rsplit("/", 1)[-1])
    extension = match.group() if (match := _EXTENSION.search(last)) else ""
    # A page's name (song.html, watch.php) says nothing of the audio it led to.
    keep = extension.lower() in MEDIA_EXTENSIONS
    return f"inputs/{record.id}/{record.track_name}{extension if keep else ''}"


def track_label(record: JobRecord) -> dict[str, str] | None:
    """The title a page link gave, for the service's pages (the player's heading)."""
    if not record.title:
        return None
    page = record.input_url if len(record.input_url) <= 2048 else ""
    return {"title": record.title[:300], "page": page}
