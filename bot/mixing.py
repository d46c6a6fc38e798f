"""Mixes from Discord: the summary's buttons (persistent across restarts) and `/mix`; each
mix is rendered by the service (MixJob) and posted in the job's thread once."""

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

# preset -> what members read; those that fit each stem count, in button order
LABELS = {"instrumental": "Instrumental", "drumless": "Drumless", "acapella": "A cappella"}
FITTING = {2: ("instrumental", "acapella"), 4: tuple(LABELS), 5: tuple(LABELS)}
ASKED, POSTED = "mix-asked:", "mix:"


def presets_for(record: JobRecord) -> tuple[str, ...]:
    return FITTING.get(record.stems, ())


class MixPoster(Protocol):
    async def post_mix(self, record: JobRecord, part: str, label: str, preset: str) -> None:
        ...


class Mixes:
    """Asks are recorded before the work starts, so a restart finishes them (`resume`)."""

    def __init__(self, jobs: JobStore, delivery: MixPoster) -> None:
        self._jobs = jobs
        self._delivery = delivery
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def request(self, guild_id: int | None, job_id: int, preset: str) -> str:
        """What to tell the member who asked; the mix itself goes to the job's thread."""
        record = await self._jobs.get(job_id)
        if record is None or record.guild_id != guild_id:
            return f"there is no job #{job_id} in this server."
        if record.state is not JobState.DONE or record.service_job_id is None:
            return f"job #{job_id} is {record.state.value}: mixes need its stems first."
        if record.deleted_at is not None or record.files_expired():
            # a button under an old summary: say so in words, and ask the service nothing
            return f"job #{job_id}'s files are gone{files_note(record)}: no mix can be made now."
        if preset not in presets_for(record):
            fits = ", ".join(LABELS[p] for p in presets_for(record))
            return f"job #{job_id} has {record.stems} stems: its mixes are {fits}."
        await self._jobs.mark_delivered(record.id, ASKED + preset, None, None)
        return await self._post(record, preset)

    async def _post(self, record: JobRecord, preset: str) -> str:
        label = f"{LABELS[preset]} mix"
        where = f"<#{record.thread_id or record.channel_id}>"
        async with self._locks.setdefault((record.id, preset), asyncio.Lock()):
            if POSTED + preset in await self._jobs.delivered(record.id):
                return f"the {label} of job #{record.id} is already in {where}."
            try:
                await self._delivery.post_mix(record, POSTED + preset, label, preset)
            except ApiError as error:
                return (f"could not make the {label} now ({plain(str(error))}); it will be"
                        " posted when the bot can reach the service again.")
        return f"the {label} of job #{record.id} is in {where}."

    async def resume(self) -> int:
        """Post the mixes asked for before a stop and not posted yet; how many."""
        pending = await self._jobs.pending_mixes(ASKED, POSTED)
        for job_id, preset in pending:
            record = await self._jobs.get(job_id)
            if record is not None and preset in LABELS:
                log.info("posting the %s mix of job #%d asked before the restart", preset,
                         job_id)
                await self._post(record, preset)
        return len(pending)


class MixButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                template=r"stembot:mix:(?P<job>[0-9]{1,19}):(?P<preset>[a-z]{1,20})"):
    """A summary's mix button; dynamic, so a click after a restart still finds its handler."""

    def __init__(self, job_id: int, preset: str) -> None:
        super().__init__(discord.ui.Button(
            label=LABELS.get(preset, preset), style=discord.ButtonStyle.secondary,
            custom_id=f"stembot:mix:{job_id}:{preset}"))
        self.job_id, self.preset = job_id, preset

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> MixButton:
        return cls(int(match["job"]), match["preset"])

    async def callback(self, interaction: discord.Interaction) -> None:
        # Rendering and uploading take longer than Discord's 3 s: acknowledge first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        bot: StemBot = interaction.client  # type: ignore[assignment]
        text = await bot.mixes.request(interaction.guild_id, self.job_id, self.preset)
        await interaction.followup.send(text, ephemeral=True)


def summary_view(record: JobRecord, player_url: str) -> discord.ui.View:
    """"Open player" (a fresh signed player link) and the mixes that fit the job's stems."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Open player", url=player_url))
    for preset in presets_for(record):
        view.add_item(MixButton(record.id, preset))
    return view
