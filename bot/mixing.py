"""Mixes from Discord: the summary's buttons (persistent across restarts) and `/mix`; each
mix is rendered by the service (MixJob) and posted in the job's thread once."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.derived import Derived, Words
from storage import JobRecord, JobStore

if TYPE_CHECKING:
    from bot.client import StemBot

log = logging.getLogger(__name__)

# preset -> what members read; those that fit each stem count, in button order
LABELS = {"instrumental": "Instrumental", "drumless": "Drumless", "acapella": "A cappella"}
FITTING = {2: ("instrumental", "acapella"), 4: tuple(LABELS), 5: tuple(LABELS)}
ASKED, POSTED = "mix-asked:", "mix:"
SPEED_RANGE = (50, 150)  # percent, as MixJob's tempo 0.5-1.5
SEMITONE_RANGE = (-12, 12)


def presets_for(record: JobRecord) -> tuple[str, ...]:
    return FITTING.get(record.stems, ())


_ASK = re.compile(r"(?P<preset>[a-z]{1,20})(-(?P<percent>[0-9]{2,3})pct)?"
                  r"(-(?P<sign>plus|minus)(?P<steps>[0-9]{1,2}))?")


@dataclass(frozen=True, slots=True)
class MixAsk:
    """A preset at a speed (percent of the song's) and a transposition (semitones)."""

    preset: str
    percent: int = 100
    semitones: int = 0

    @property
    def key(self) -> str:
        """How the ask is recorded (`drumless-80pct-minus2`), the service's file-name words."""
        key = self.preset
        if self.percent != 100:
            key += f"-{self.percent}pct"
        if self.semitones:
            key += f"-{'plus' if self.semitones > 0 else 'minus'}{abs(self.semitones)}"
        return key

    @property
    def label(self) -> str:
        """`Drumless mix · 80 % speed · −2 semitones`."""
        words = [f"{LABELS[self.preset]} mix"]
        if self.percent != 100:
            words.append(f"{self.percent} % speed")
        if self.semitones:
            sign = "+" if self.semitones > 0 else "\u2212"
            words.append(f"{sign}{abs(self.semitones)} semitone"
                         f"{'s' if abs(self.semitones) != 1 else ''}")
        return " · ".join(words)

    @classmethod
    def parse(cls, key: str) -> MixAsk | None:
        """The ask a recorded key names; None for a key this bot never writes."""
        found = _ASK.fullmatch(key)
        if found is None or found["preset"] not in LABELS:
            return None
        steps = int(found["steps"] or 0) * (-1 if found["sign"] == "minus" else 1)
        return cls(found["preset"], int(found["percent"] or 100), steps)


class MixPoster(Protocol):
    async def post_mix(self, record: JobRecord, part: str, ask: MixAsk) -> None:
        ...


class Mixes:
    """Asks are recorded before the work starts, so a restart finishes them (`resume`)."""

    def __init__(self, jobs: JobStore, delivery: MixPoster) -> None:
        self._delivery = delivery
        self._asks = Derived(jobs, ASKED, POSTED, Words("mixes need", "no mix"))

    async def request(self, guild_id: int | None, job_id: int, preset: str, percent: int = 100,
                      semitones: int = 0) -> str:
        """What to tell the member who asked; the mix itself goes to the job's thread."""
        record = await self._asks.finished(guild_id, job_id)
        if isinstance(record, str):
            return record
        if preset not in presets_for(record):
            fits = ", ".join(LABELS[p] for p in presets_for(record))
            return f"job #{job_id} has {record.stems} stems: its mixes are {fits}."
        if not (SPEED_RANGE[0] <= percent <= SPEED_RANGE[1]
                and SEMITONE_RANGE[0] <= semitones <= SEMITONE_RANGE[1]):
            return (f"speed must be {SPEED_RANGE[0]}-{SPEED_RANGE[1]} % and semitones"
                    f" {SEMITONE_RANGE[0]} to {SEMITONE_RANGE[1]}.")
        ask = MixAsk(preset, percent, semitones)
        return await self._asks.ask(record, ask.key, f"the {ask.label}", False,
                                    self._poster(record, ask))

    def _poster(self, record: JobRecord, ask: MixAsk) -> Callable[[str], Awaitable[None]]:
        return lambda part: self._delivery.post_mix(record, part, ask)

    async def resume(self) -> int:
        """Post the mixes asked for before a stop and not posted yet; how many."""
        pending = await self._asks.pending()
        for record, key in pending:
            ask = MixAsk.parse(key)
            if ask is not None:
                log.info("posting the %s of job #%d asked before the restart", ask.label,
                         record.id)
                await self._asks.post(record, ask.key, f"the {ask.label}", False,
                                      self._poster(record, ask))
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
    """"Open player" (a fresh signed player link), the mixes that fit the job's stems, and
    MIDI (every stem count has a pitched stem: vocals)."""
    from bot.midi import MidiButton

    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Open player", url=player_url))
    for preset in presets_for(record):
        view.add_item(MixButton(record.id, preset))
    view.add_item(MidiButton(record.id))
    return view
