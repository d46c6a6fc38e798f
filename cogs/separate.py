"""`/separate`: a link or an attachment in, stems out in a thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.jobapi import ApiError
from bot.messages import QUALITY_SHIFTS, STEM_CHOICES, plain, status_text
from bot.probe import MIB, InputRefusedError, file_title, track_name
from bot.quota import refusal
from download.sites import Track
from separation import OutputFormat
from storage import GuildLimits, JobRecord, JobState, NewJob

if TYPE_CHECKING:
    from bot.client import StemBot

log = logging.getLogger(__name__)

FORMATS = (OutputFormat.MP3, OutputFormat.FLAC, OutputFormat.WAV, OutputFormat.OPUS)


class Separate(commands.Cog):
    """Submits separations and hands them to the tracker."""

    def __init__(self, bot: StemBot) -> None:
        self.bot = bot

    @app_commands.command(name="separate", description="Split a song into stems")
    @app_commands.guild_only()
    @app_commands.describe(
        stems="How many stems", url="A link to the audio file",
        file="Or attach the audio file", fmt="File format of the stems (default mp3)",
        quality="standard, or high: a better separation that takes about twice as long",
    )
    @app_commands.choices(
        stems=[Choice(name=name, value=count) for count, name in STEM_CHOICES.items()])
    @app_commands.choices(fmt=[Choice(name=f.value, value=f.value) for f in FORMATS])
    @app_commands.choices(
        quality=[Choice(name=name, value=shifts) for name, shifts in QUALITY_SHIFTS.items()])
    @app_commands.rename(fmt="format")
    async def separate(
        self, interaction: discord.Interaction, stems: Choice[int], url: str | None = None,
        file: discord.Attachment | None = None, fmt: Choice[str] | None = None,
        quality: Choice[int] | None = None,
    ) -> None:
        assert interaction.guild_id is not None and interaction.channel_id is not None
        limits = await self.bot.limits.get(interaction.guild_id)
        problem = self._check_input(url, file, limits) or await refusal(
            self.bot.jobs, limits, interaction.guild_id, interaction.user.id)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        source = url or (file.url if file else "")
        await interaction.response.defer(thinking=True)
        record = await self.bot.jobs.create(NewJob(
            guild_id=interaction.guild_id, channel_id=interaction.channel_id,
            user_id=interaction.user.id, input_url=source,
            track_name=track_name(source, file.filename if file else None),
            stems=stems.value, format=fmt.value if fmt else OutputFormat.MP3.value,
            shifts=quality.value if quality else QUALITY_SHIFTS["standard"],
        ))
        self.bot.statuses.attach(record.id, interaction)
        try:
            record = await self._open_thread(interaction, record)
            await self._submit(record, limits)
        except Exception as error:
            # Whatever went wrong, the record must not stay "downloading" forever.
            log.exception("job %s: submitting it failed", record.id)
            try:
                await self.bot.tracker.fail(
                    record, f"the bot failed internally ({type(error).__name__}: {error});"
                    " please try again")
                ended = await self.bot.jobs.require(record.id)
                if ended.state is JobState.FAILED and ended.service_job_id is not None:
                    await self.bot.tracker.cancel_orphan(ended.service_job_id)
            except Exception:
                log.exception("job %s: could not record the failure", record.id)

    def _check_input(self, url: str | None, file: discord.Attachment | None,
                     limits: GuildLimits) -> str | None:
        if (url is None) == (file is None):
            return "give exactly one of `url` (a link to the song) or `file` (an attachment)."
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return f"{plain(url[:100])} is not an http(s) link to an audio file."
            return None
        assert file is not None
        kind = file.content_type or "unknown type"
        # The uploader chose both: shown escaped, not in `code`, which a backtick would end.
        if not kind.startswith(("audio/", "video/")):
            return f"{plain(file.filename)} is not an audio file ({plain(kind)})."
        if limits.max_mib and file.size > limits.max_mib * MIB:
            return (f"{plain(file.filename)} is {file.size / MIB:.1f} MiB; this server allows at"
                    f" most {limits.max_mib} MiB.")
        return None

    async def _open_thread(self, interaction: discord.Interaction,
                           record: JobRecord) -> JobRecord:
        """Show the first status and open the delivery thread on the reply message."""
        message = await interaction.edit_original_response(content=status_text(record))
        thread_id: int | None = None
        try:
            thread = await message.create_thread(name=f"stems: {record.track_name}"[:100])
            thread_id = thread.id
        except (discord.HTTPException, ValueError) as error:
            # No thread (missing permission, or already in a thread): deliver in the channel.
            log.info("job %s: no thread (%s); delivering in the channel", record.id, error)
        return await self.bot.jobs.update(record.id, message_id=message.id, thread_id=thread_id)

    async def _titled(self, record: JobRecord, track: Track) -> JobRecord:
        """A page link's title, known once checked: the record keeps it (the summary and
        /jobs history show it, the stems and the upload are named after it) and the thread,
        opened before the check, is renamed "Artist – Title"."""
        title = track.display.strip()[:200]
        if not title:
            return record
        record = await self.bot.jobs.update(record.id, title=title,
                                            track_name=file_title(track))
        await self.bot.statuses.show(record)
        if record.thread_id is not None:
            try:
                await self.bot.http.edit_channel(record.thread_id, name=title[:100])
            except discord.HTTPException as error:  # the old name does no harm
                log.info("job %s: the thread keeps its name (%s)", record.id, error)
        return record

    async def _submit(self, record: JobRecord, limits: GuildLimits) -> None:
        tracker = self.bot.tracker
        try:
            async with self.bot.inputs.checked(record.input_url, limits,
                                               self.bot.settings.work_dir) as checked:
                if checked.track is not None:
                    record = await self._titled(record, checked.track)
                submitted = await tracker.submit(record, checked.path)
        except InputRefusedError as error:
            await tracker.fail(record, str(error))
            return
        except ApiError:
            return  # the tracker has recorded and shown the error
        if submitted is None:
            return  # canceled during the download: the cancel has shown it
        await self.bot.statuses.show(submitted)
        tracker.follow(submitted.id)


async def setup(bot: StemBot) -> None:
    await bot.add_cog(Separate(bot))
