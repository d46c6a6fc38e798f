"""The summary's **MIDI** button: the job's pitched stems transcribed by the service
(CreateMidi) and posted in the job's thread once, in one message."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.jobapi import ApiError
from bot.messages import files_note, plain
from storage import JobRecord, JobState, JobStore

if TYPE_CHECKING:
    from bot.client import StemBot

log = logging.getLogger(__name__)
# delivered parts: asked before the work starts (a restart finishes it), posted after
ASKED, POSTED = "midi-asked:", "midi:"
KEY = "stems"  # one ask per job: its default pitched stems


class MidiPoster(Protocol):
    async def post_midi(self, record: JobRecord, part: str) -> None:
        ...


class Midis:
    """One MIDI post per job, however often the button is pressed."""

    def __init__(self, jobs: JobStore, delivery: MidiPoster) -> None:
        self._jobs = jobs
        self._delivery = delivery
        self._locks: dict[int, asyncio.Lock] = {}

    async def request(self, guild_id: int | None, job_id: int) -> str:
        """What to tell the member who pressed; the files go to the job's thread."""
        record = await self._jobs.get(job_id)
        if record is None or record.guild_id != guild_id:
            return f"there is no job #{job_id} in this server."
        if record.state is not JobState.DONE or record.service_job_id is None:
            return f"job #{job_id} is {record.state.value}: MIDI needs its stems first."
        if record.deleted_at is not None or record.files_expired():
            return f"job #{job_id}'s files are gone{files_note(record)}: no MIDI can be made now."
        await self._jobs.mark_delivered(record.id, ASKED + KEY, None, None)
        return await self._post(record)

    async def _post(self, record: JobRecord) -> str:
        where = f"<#{record.thread_id or record.channel_id}>"
        async with self._locks.setdefault(record.id, asyncio.Lock()):
            if POSTED + KEY in await self._jobs.delivered(record.id):
                return f"the MIDI files of job #{record.id} are already in {where}."
            try:
                await self._delivery.post_midi(record, POSTED + KEY)
            except ApiError as error:
                return (f"could not make the MIDI files now ({plain(str(error))}); they will"
                        " be posted when the bot can reach the service again.")
        return f"the MIDI files of job #{record.id} are in {where}."

    async def resume(self) -> int:
        """Post the MIDI files asked for before a stop and not posted yet; how many."""
        pending = await self._jobs.pending_mixes(ASKED, POSTED)
        for job_id, _ in pending:
            record = await self._jobs.get(job_id)
            if record is not None:
                log.info("posting the MIDI files of job #%d asked before the restart", job_id)
                await self._post(record)
        return len(pending)


class MidiButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                 template=r"stembot:midi:(?P<job>[0-9]{1,19})"):
    """A summary's MIDI button; dynamic, so a click after a restart still finds its handler."""

    def __init__(self, job_id: int) -> None:
        super().__init__(discord.ui.Button(
            label="MIDI", style=discord.ButtonStyle.secondary,
            custom_id=f"stembot:midi:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> MidiButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # Transcribing and uploading take longer than Discord's 3 s: acknowledge first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        bot: StemBot = interaction.client  # type: ignore[assignment]
        text = await bot.midis.request(interaction.guild_id, self.job_id)
        await interaction.followup.send(text, ephemeral=True)
