"""`/separate`: a link or an attachment in, stems out in a thread."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.jobapi import ApiError
from bot.messages import (
    QUALITY_SHIFTS,
    STEM_CHOICES,
    URL_LIMIT,
    plain,
    shown_link,
    status_text,
)
from bot.probe import MIB, InputRefusedError, file_title, track_name
from bot.quota import refusal
from download.sites import Track
from separation import OutputFormat
from storage import GuildLimits, JobRecord, JobState, NewJob

if TYPE_CHECKING:
    from bot.client import StemBot

log = logging.getLogger(__name__)

FORMATS = (OutputFormat.MP3, OutputFormat.FLAC, OutputFormat.WAV, OutputFormat.OPUS)


MENU = "Separate stems"
_LINK = re.compile(r"https?://[^\s<>]+")


def input_of(message: discord.Message
             ) -> tuple[str | None, discord.Attachment | None, str | None]:
    """What a message offers to separate: its first audio (or video) attachment, else its
    first link, else its first attachment (refused for its type); or why there is nothing."""
    files = message.attachments
    audio = next((a for a in files if (a.content_type or "").startswith(("audio/", "video/"))),
                 None)
    if audio is not None:
        return None, audio, None
    if link := _LINK.search(message.content or ""):
        return link.group().rstrip(".,;:!?)]'\""), None, None
    if files:
        return None, files[0], None
    return None, None, "that message has no audio file and no link to separate."


class Separate(commands.Cog):
    """Submits separations and hands them to the tracker: `/separate`, and the message
    command "Separate stems" (Apps → Separate stems on a message with audio or a link)."""

    def __init__(self, bot: StemBot) -> None:
        self.bot = bot
        # A context menu cannot be a method decorator in a cog: it is built and added here.
        self.menu = app_commands.ContextMenu(name=MENU, callback=self.separate_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

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
        await self.start(interaction, stems.value, url, file,
                         fmt.value if fmt else OutputFormat.MP3.value,
                         quality.value if quality else QUALITY_SHIFTS["standard"])

    async def separate_message(self, interaction: discord.Interaction,
                               message: discord.Message) -> None:
        """Apps → Separate stems: the same checks as /separate at once, then the member picks
        the stems and the format (an ephemeral chooser), then /separate's own path."""
        assert interaction.guild_id is not None
        limits = await self.bot.limits.get(interaction.guild_id)
        problem = await self.refusal(interaction, limits, *input_of(message))
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        url, file, _ = input_of(message)
        what = plain(file.filename) if file else shown_link(url or "", URL_LIMIT)
        await interaction.response.send_message(
            f"Separate {what}: choose the stems (and the format), then **Separate**.",
            view=StemChooser(self, interaction, message, url, file), ephemeral=True)

    async def refusal(self, interaction: discord.Interaction, limits: GuildLimits,
                      url: str | None, file: discord.Attachment | None,
                      problem: str | None = None) -> str | None:
        """Why this input may not be separated by this member now: /separate's checks."""
        assert interaction.guild_id is not None
        return problem or self._check_input(url, file, limits) or await refusal(
            self.bot.jobs, limits, interaction.guild_id, interaction.user.id)

    async def start(self, interaction: discord.Interaction, stems: int, url: str | None,
                    file: discord.Attachment | None, fmt: str, shifts: int,
                    thread_on: discord.Message | None = None) -> None:
        """Check, record, reply, open the thread (on the reply, or on `thread_on`), submit."""
        assert interaction.guild_id is not None and interaction.channel_id is not None
        limits = await self.bot.limits.get(interaction.guild_id)
        problem = await self.refusal(interaction, limits, url, file)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        source = url or (file.url if file else "")
        await interaction.response.defer(thinking=True)
        record = await self.bot.jobs.create(NewJob(
            guild_id=interaction.guild_id, channel_id=interaction.channel_id,
            user_id=interaction.user.id, input_url=source,
            track_name=track_name(source, file.filename if file else None),
            stems=stems, format=fmt, shifts=shifts,
        ))
        self.bot.statuses.attach(record.id, interaction)
        try:
            record = await self._open_thread(interaction, record, thread_on)
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

    async def _open_thread(self, interaction: discord.Interaction, record: JobRecord,
                           on: discord.Message | None = None) -> JobRecord:
        """Show the first status and open the delivery thread on the reply message (or on the
        member's message a message command named)."""
        message = await interaction.edit_original_response(content=status_text(record))
        thread_id: int | None = None
        try:
            thread = await (on or message).create_thread(
                name=f"stems: {record.track_name}"[:100])
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


class StemChooser(discord.ui.View):
    """The message command's choice: stems and format, then Separate (its member only)."""

    def __init__(self, cog: Separate, asked: discord.Interaction, message: discord.Message,
                 url: str | None, file: discord.Attachment | None) -> None:
        super().__init__(timeout=600)
        self.cog, self.asked, self.message, self.url, self.file = cog, asked, message, url, file

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.asked.user.id

    @discord.ui.select(placeholder="Stems", options=[
        discord.SelectOption(label=name, value=str(count)) for count, name in STEM_CHOICES.items()])
    async def stems(self, interaction: discord.Interaction,
                    select: discord.ui.Select[StemChooser]) -> None:
        await interaction.response.defer()  # kept in the select until Separate

    @discord.ui.select(placeholder="Format (mp3)", options=[
        discord.SelectOption(label=f.value, value=f.value) for f in FORMATS])
    async def fmt(self, interaction: discord.Interaction,
                  select: discord.ui.Select[StemChooser]) -> None:
        await interaction.response.defer()

    @discord.ui.button(label="Separate", style=discord.ButtonStyle.primary)
    async def go(self, interaction: discord.Interaction,
                 button: discord.ui.Button[StemChooser]) -> None:
        if not self.stems.values:
            await interaction.response.send_message("choose how many stems first.",
                                                    ephemeral=True)
            return
        assert interaction.guild_id is not None
        limits = await self.cog.bot.limits.get(interaction.guild_id)
        problem = await self.cog.refusal(interaction, limits, self.url, self.file)
        if problem is not None:  # (start checks again: this keeps the chooser for later)
            await interaction.response.send_message(problem, ephemeral=True)
            return
        self.stop()
        fmt = self.fmt.values[0] if self.fmt.values else OutputFormat.MP3.value
        with contextlib.suppress(discord.HTTPException):  # the chooser has served
            await self.asked.edit_original_response(
                content=f"{STEM_CHOICES[int(self.stems.values[0])]}, {fmt}: started.",
                view=None)
        await self.cog.start(interaction, int(self.stems.values[0]), self.url, self.file, fmt,
                             QUALITY_SHIFTS["standard"], thread_on=self.message)


async def setup(bot: StemBot) -> None:
    await bot.add_cog(Separate(bot))
