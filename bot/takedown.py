"""`/job delete`: the service deletes the job's files, the bot its posts in the thread.

The takedown is recorded before anything is removed, and each removed post is recorded, so
a bot killed halfway finishes at its next start and never deletes or announces twice.
"""

from __future__ import annotations

import contextlib
import logging

import discord

from bot.delivery import Delivery, post_nonce
from bot.jobapi import ApiError, JobApi
from bot.tracker import JobTracker
from storage import JobRecord, JobState, JobStore

log = logging.getLogger(__name__)
NOTICE = "takedown"


class Takedowns:
    """Carries out takedowns, and finishes those a stop interrupted."""

    def __init__(self, api: JobApi, jobs: JobStore, delivery: Delivery,
                 tracker: JobTracker) -> None:
        self._api = api
        self._jobs = jobs
        self._delivery = delivery
        self._tracker = tracker

    async def take_down(self, record: JobRecord, by: int) -> bool:
        """False if the job was already taken down (then nothing is done again)."""
        if not await self._jobs.mark_deleted(record.id, by):
            return False
        await self.finish(await self._jobs.require(record.id))
        return True

    async def resume(self) -> int:
        """At start: finish every takedown a stop interrupted."""
        pending = await self._jobs.unfinished_takedowns()
        for record in pending:
            await self.finish(record)
        return len(pending)

    async def finish(self, record: JobRecord) -> None:
        await self._at_service(record)
        target = self._delivery.destination(record)
        for post in await self._jobs.posts_to_remove(record.id):
            if post.message_id is not None:
                with contextlib.suppress(discord.NotFound):  # a moderator removed it already
                    await target.get_partial_message(post.message_id).delete()
            await self._jobs.mark_removed(record.id, post.stem)
        if NOTICE not in await self._jobs.delivered(record.id):
            notice = await target.send(
                f"🗑️ job #{record.id} was deleted by <@{record.deleted_by}>"
                f" <t:{int(record.deleted_at or 0)}:R>: its stems were removed here and from"
                " the separation service.", nonce=post_nonce(record, NOTICE))
            await self._jobs.mark_removed(record.id, NOTICE, notice.id)

    async def _at_service(self, record: JobRecord) -> None:
        if not record.state.final and record.service_job_id is None:
            note = f"deleted by <@{record.deleted_by}>"
            await self._tracker.end(record, JobState.CANCELED, note)
        if record.service_job_id is not None:
            try:
                job = await self._api.delete_job(record.service_job_id)
            except ApiError as error:
                if error.code != "JOB_NOT_FOUND":
                    raise
            else:
                if not record.state.final:
                    await self._tracker.on_callback(record, job)
        await self._tracker.remove_upload(record)
