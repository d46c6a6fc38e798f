"""What the bot makes from a finished job when a member asks (a mix, the MIDI files): the ask
is recorded before the work starts, so a restart finishes it, and the result is posted in the
job's thread once, however often it is asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.jobapi import ApiError
from bot.messages import files_note, plain
from storage import JobRecord, JobState, JobStore


@dataclass(frozen=True, slots=True)
class Words:
    """How members read about one kind of derived file."""

    needs: str  # "mixes need", "MIDI needs"
    none: str  # "no mix", "no MIDI"


class Derived:
    """Asked, then posted once: `asked + key` and `posted + key` among a job's delivered parts."""

    def __init__(self, jobs: JobStore, asked: str, posted: str, words: Words) -> None:
        self._jobs = jobs
        self._asked, self._posted = asked, posted
        self._words = words
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def finished(self, guild_id: int | None, job_id: int) -> JobRecord | str:
        """The server's finished job whose files are still there, or why not, in words."""
        record = await self._jobs.get(job_id)
        if record is None or record.guild_id != guild_id:
            return f"there is no job #{job_id} in this server."
        if record.state is not JobState.DONE or record.service_job_id is None:
            return f"job #{job_id} is {record.state.value}: {self._words.needs} its stems first."
        if record.deleted_at is not None or record.files_expired():
            # a button under an old summary: say so in words, and ask the service nothing
            return (f"job #{job_id}'s files are gone{files_note(record)}: {self._words.none}"
                    " can be made now.")
        return record

    async def ask(self, record: JobRecord, key: str, what: str, plural: bool,
                  post: Callable[[str], Awaitable[None]]) -> str:
        """Record the ask, then post (`post(part)`) unless posted already; what to tell."""
        await self._jobs.mark_delivered(record.id, self._asked + key, None, None)
        return await self.post(record, key, what, plural, post)

    async def post(self, record: JobRecord, key: str, what: str, plural: bool,
                   post: Callable[[str], Awaitable[None]]) -> str:
        where = f"<#{record.thread_id or record.channel_id}>"
        verb, it = ("are", "they") if plural else ("is", "it")
        async with self._locks.setdefault((record.id, key), asyncio.Lock()):
            if self._posted + key in await self._jobs.delivered(record.id):
                return f"{what} of job #{record.id} {verb} already in {where}."
            try:
                await post(self._posted + key)
            except ApiError as error:
                return (f"could not make {what} now ({plain(str(error))}); {it} will be"
                        " posted when the bot can reach the service again.")
        return f"{what} of job #{record.id} {verb} in {where}."

    async def pending(self) -> list[tuple[JobRecord, str]]:
        """The asks made before a stop and not posted yet, with their jobs."""
        found = []
        for job_id, key in await self._jobs.pending_mixes(self._asked, self._posted):
            record = await self._jobs.get(job_id)
            if record is not None:
                found.append((record, key))
        return found
