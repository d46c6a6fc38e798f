"""The reply message of each job: edited as the job moves, throttled during progress."""

from __future__ import annotations

import logging
import time

import discord

from bot.messages import status_text
from storage import JobRecord

log = logging.getLogger(__name__)

# Interaction tokens die after 15 minutes; stop using them a minute before.
INTERACTION_TTL = 14 * 60


class StatusMessages:
    """Edits a job's reply through its interaction while young, then as a channel message."""

    def __init__(self, client: discord.Client, progress_interval: float = 5.0) -> None:
        self._client = client
        self._interval = progress_interval
        self._interactions: dict[int, discord.Interaction] = {}
        self._last_edit: dict[int, float] = {}
        self._last_text: dict[int, str] = {}

    def attach(self, record_id: int, interaction: discord.Interaction) -> None:
        self._interactions[record_id] = interaction

    async def show(self, record: JobRecord, *, progress_only: bool = False, queue: str = ""
                   ) -> bool:
        """Show the record's state (while queued, with its place: `queue`, a queue_note);
        progress-only changes wait out the throttle. False when one did (not shown)."""
        text = status_text(record, queue)
        now = time.monotonic()
        if self._last_text.get(record.id) == text:
            return True
        if progress_only and now - self._last_edit.get(record.id, 0.0) < self._interval:
            return False
        self._last_edit[record.id] = now
        self._last_text[record.id] = text
        try:
            await self._edit(record, text)
        except discord.HTTPException as error:
            # A deleted reply must not stop the job; the thread still gets the stems.
            log.warning("job %s: could not edit the status message: %s", record.id, error)
        if record.state.final:
            self.forget(record.id)
        return True

    def forget(self, record_id: int) -> None:
        self._interactions.pop(record_id, None)
        self._last_edit.pop(record_id, None)
        self._last_text.pop(record_id, None)

    async def _edit(self, record: JobRecord, text: str) -> None:
        interaction = self._interactions.get(record.id)
        if interaction is not None:
            age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
            if age < INTERACTION_TTL:
                await interaction.edit_original_response(content=text)
                return
            self._interactions.pop(record.id, None)
        if record.message_id is None:
            return
        channel = self._client.get_partial_messageable(record.channel_id, guild_id=record.guild_id)
        await channel.get_partial_message(record.message_id).edit(content=text)
