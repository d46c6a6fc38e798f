"""The bot: discord.py client, its database, the job API client and the callback listener."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.delivery import Delivery
from bot.jobapi import ApiError, JobApi
from bot.midi import MidiButton, Midis
from bot.mixing import MixButton, Mixes
from bot.probe import InputFetcher
from bot.settings import BotSettings
from bot.status import StatusMessages
from bot.takedown import Takedowns
from bot.tracker import JobTracker
from bot.webhook import CallbackListener
from storage import Database, JobStore, LimitStore

log = logging.getLogger(__name__)

COGS = ("cogs.separate", "cogs.job", "cogs.jobs", "cogs.mix")


class StemTree(app_commands.CommandTree[commands.Bot]):
    """Turns every command error into an ephemeral answer, so no member waits forever."""

    async def on_error(self, interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        """Refusals from checks go to the member; anything else is logged and admitted."""
        if isinstance(error, app_commands.CheckFailure):
            text = str(error)
        else:
            log.error("command %s failed", interaction.command and interaction.command.name,
                      exc_info=error)
            text = "something went wrong inside the bot; the error is in its log."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


class StemBot(commands.Bot):
    """Slash commands only; `services=False` loads just the commands (for `stembot sync`)."""

    db: Database
    jobs: JobStore
    limits: LimitStore
    session: aiohttp.ClientSession
    inputs: InputFetcher
    api: JobApi
    delivery: Delivery
    statuses: StatusMessages
    tracker: JobTracker
    takedowns: Takedowns
    listener: CallbackListener
    mixes: Mixes
    midis: Midis

    def __init__(self, settings: BotSettings, *, services: bool = True) -> None:
        # No privileged intents: slash commands need only the guilds intent. No mention in
        # any message pings by default: its text may quote a member's link, file name or an
        # error about them; the one message that calls its member allows just that member.
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents.default(), help_command=None,
                         tree_cls=StemTree, allowed_mentions=discord.AllowedMentions.none())
        self.settings = settings
        self._services = services
        self._reconcile_task: asyncio.Task[None] | None = None
        self._forget_task: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        for name in COGS:
            await self.load_extension(name)
        # buttons of summaries posted before a restart
        self.add_dynamic_items(MixButton, MidiButton)
        if self._services:
            await self._start_services()

    async def _start_services(self) -> None:
        settings = self.settings
        await asyncio.to_thread(settings.work_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(clear_scratch, settings.work_dir)
        self.db = await Database.open(settings.database)
        self.jobs = JobStore(self.db)
        self.limits = LimitStore(self.db, settings.limits)
        self.session = aiohttp.ClientSession()
        self.inputs = InputFetcher(settings.allow_private_networks, settings.link_sites)
        self.api = JobApi(self.session, settings.api_url, settings.secret_id, settings.secret_key,
                          settings.content_id)
        self.delivery = Delivery(self, self.api, self.jobs, settings.work_dir)
        self.mixes = Mixes(self.jobs, self.delivery)
        self.midis = Midis(self.jobs, self.delivery)
        self.statuses = StatusMessages(self)
        self.tracker = JobTracker(self.api, self.jobs, self.delivery, self.statuses,
                                  settings.callback_base, settings.job_timeout)
        self.takedowns = Takedowns(self.api, self.jobs, self.delivery, self.tracker)
        self.listener = CallbackListener(self.jobs, settings.secret_key, self.tracker.on_callback)
        if settings.callbacks:
            await self.listener.start(settings.listen_host, settings.listen_port)
        if settings.callbacks and not settings.public_url and settings.listen_port == 0:
            # Port 0 (tests) picks a free port: the callback URLs must name the real one.
            self.tracker.callback_base = (
                f"http://{settings.listen_host}:{self.listener.port}/callbacks/")
        self._reconcile_task = asyncio.create_task(self._reconcile())
        if settings.retention_days:
            self._forget_task = asyncio.create_task(self._forget_old_records())

    async def _forget_old_records(self) -> None:
        """BOT_RETENTION_DAYS: at start, then hourly."""
        while True:
            before = time.time() - self.settings.retention_days * 86400
            if forgotten := await self.jobs.forget_before(before):
                log.info("forgot %d job record(s) older than %d days", forgotten,
                         self.settings.retention_days)
            await asyncio.sleep(3600)

    async def reconciled(self) -> None:
        """Until the start-up look at unfinished jobs is done (tests wait on it)."""
        if self._reconcile_task is not None:
            await asyncio.shield(self._reconcile_task)

    async def _reconcile(self) -> None:
        # Guilds (and their upload limits) are known only once the gateway is ready.
        await self.wait_until_ready()
        count = await self.tracker.reconcile()
        if count:
            log.info("following %d job(s) that were unfinished at the last stop", count)
        await self.mixes.resume()
        await self.midis.resume()
        try:
            if taken := await self.takedowns.resume():
                log.info("finished %d takedown(s) interrupted at the last stop", taken)
        except (ApiError, discord.HTTPException) as error:
            log.warning("could not finish an interrupted takedown: %s", error)

    async def close(self) -> None:
        if self._services and hasattr(self, "tracker"):
            for task in (self._reconcile_task, self._forget_task):
                if task is not None:
                    task.cancel()
            await self.listener.stop()
            await self.tracker.close()
            await self.session.close()
            await self.inputs.close()
            await self.db.close()
        await super().close()


def clear_scratch(work_dir: Path) -> None:
    """What a stopped run left in the scratch folder: no job of this run uses it yet, and a
    job of the last one resumes from its upload at the service, not from these files."""
    for entry in work_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
