"""`/job status`, `/job cancel`, `/job delete`: a member's own jobs (moderators: any)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.jobapi import ApiError
from bot.messages import plain, status_text
from bot.permissions import is_moderator
from storage import JobRecord, JobState

if TYPE_CHECKING:
    from bot.client import StemBot


@app_commands.guild_only()
class Job(commands.GroupCog, group_name="job", group_description="Your separation jobs"):
    """Look at or cancel one job."""

    def __init__(self, bot: StemBot) -> None:
        self.bot = bot
        super().__init__()

    async def own_jobs(self, interaction: discord.Interaction, current: str) -> list[Choice[int]]:
        """Autocomplete: the member's 25 most recent jobs in this guild."""
        if interaction.guild_id is None:
            return []
        records = await self.bot.jobs.recent_for_user(interaction.guild_id, interaction.user.id)
        choices = [Choice(name=f"#{r.id} {r.track_name} ({r.state.value})"[:100], value=r.id)
                   for r in records]
        return [c for c in choices if current.lower() in c.name.lower()][:25]

    @app_commands.command(name="status", description="Show where one of your jobs is")
    @app_commands.describe(job_id="The job number")
    @app_commands.rename(job_id="id")
    @app_commands.autocomplete(job_id=own_jobs)
    async def status(self, interaction: discord.Interaction, job_id: int) -> None:
        record = await self._find(interaction, job_id)
        if record is None:
            return
        where = f"\nthread: <#{record.thread_id}>" if record.thread_id else ""
        await interaction.response.send_message(status_text(record) + where, ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel one of your jobs")
    @app_commands.describe(job_id="The job number")
    @app_commands.rename(job_id="id")
    @app_commands.autocomplete(job_id=own_jobs)
    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        record = await self._allowed(interaction, job_id, "cancel")
        if record is None:
            return
        if record.state.final:
            await interaction.response.send_message(
                f"job #{job_id} is already {record.state.value}; nothing to cancel.",
                ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True)
        message = await self._cancel(record, interaction.user)
        await interaction.followup.send(message, ephemeral=True)

    @app_commands.command(name="delete",
                          description="Delete one of your jobs: its stems here and at the service")
    @app_commands.describe(job_id="The job number")
    @app_commands.rename(job_id="id")
    @app_commands.autocomplete(job_id=own_jobs)
    async def delete(self, interaction: discord.Interaction, job_id: int) -> None:
        record = await self._allowed(interaction, job_id, "delete")
        if record is None:
            return
        await interaction.response.defer(ephemeral=True)
        try:
            done = await self.bot.takedowns.take_down(record, interaction.user.id)
        except (ApiError, discord.HTTPException) as error:
            await interaction.followup.send(
                f"job #{job_id}: the deletion is recorded but not finished"
                f" ({plain(str(error))}); it is retried at the bot's next start.", ephemeral=True)
            return
        await interaction.followup.send(
            f"job #{job_id} deleted: its stems were removed." if done
            else f"job #{job_id} was already deleted.", ephemeral=True)

    async def _cancel(self, record: JobRecord, by: discord.User | discord.Member) -> str:
        note = f"by <@{by.id}>"
        await self.bot.jobs.update(record.id, error=note)
        if record.service_job_id is None:
            await self.bot.tracker.end(record, JobState.CANCELED, note)
            # CreateJob may have been answered between reading the record and ending it.
            current = await self.bot.jobs.require(record.id)
            if current.service_job_id is not None and current.state is JobState.CANCELED:
                await self.bot.tracker.cancel_orphan(current.service_job_id)
                return f"job #{record.id} canceled."
            return f"job #{record.id} canceled before it reached the service."
        try:
            job = await self.bot.api.cancel_job(record.service_job_id)
        except ApiError as error:
            return f"could not cancel job #{record.id}: {plain(str(error))}"
        # The service answers with the job as it is now; the tracker ends it (once).
        await self.bot.tracker.on_callback(record, job)
        return f"job #{record.id} canceled."

    async def _allowed(self, interaction: discord.Interaction, job_id: int,
                       verb: str) -> JobRecord | None:
        """The job, if the member may `verb` it (its owner or a moderator); else say why."""
        record = await self._find(interaction, job_id)
        if record is None:
            return None
        limits = await self.bot.limits.get(record.guild_id)
        if record.user_id != interaction.user.id and not is_moderator(interaction.user, limits):
            await interaction.response.send_message(
                f"job #{job_id} belongs to <@{record.user_id}>; only they or a moderator may"
                f" {verb} it.", ephemeral=True)
            return None
        return record

    async def _find(self, interaction: discord.Interaction, job_id: int) -> JobRecord | None:
        record = await self.bot.jobs.get(job_id)
        if record is None or record.guild_id != interaction.guild_id:
            await interaction.response.send_message(
                f"there is no job #{job_id} in this server.", ephemeral=True)
            return None
        return record


async def setup(bot: StemBot) -> None:
    await bot.add_cog(Job(bot))
