"""The summary's **MIDI** button: the job's pitched stems transcribed by the service
(CreateMidi) and posted in the job's thread once, in one message."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.derived import Derived, Words
from storage import JobRecord, JobStore

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
        self._delivery = delivery
        self._asks = Derived(jobs, ASKED, POSTED, Words("MIDI needs", "no MIDI"))

    async def request(self, guild_id: int | None, job_id: int) -> str:
        """What to tell the member who pressed; the files go to the job's thread."""
        record = await self._asks.finished(guild_id, job_id)
        if isinstance(record, str):
            return record
        return await self._asks.ask(record, KEY, "the MIDI files", True, self._poster(record))

    def _poster(self, record: JobRecord) -> Callable[[str], Awaitable[None]]:
        return lambda part: self._delivery.post_midi(record, part)

    async def resume(self) -> int:
        """Post the MIDI files asked for before a stop and not posted yet; how many."""
        pending = await self._asks.pending()
        for record, _ in pending:
            log.info("posting the MIDI files of job #%d asked before the restart", record.id)
            await self._asks.post(record, KEY, "the MIDI files", True, self._poster(record))
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
