"""The bot: discord.py client, its database, the job API client and the callback listener."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.delivery import Delivery
from bot.jobapi import ApiError, JobApi
from bot.probe import InputFetcher
from bot.settings import BotSettings
from bot.status import StatusMessages
from bot.takedown import Takedowns
from bot.tracker import JobTracker
from bot.webhook import CallbackListener
from storage import Database, JobStore, LimitStore

log = logging.getLogger(__name__)

COGS = ("cogs.separate", "cogs.job", "cogs.jobs")


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

    def __init__(self, settings: BotSettings, *, services: bool = True) -> None:
        # No privileged intents: slash commands need only the guilds intent.
        super().__init__(command_prefix=commands.when_mentioned,
                         intents=discord.Intents.default(), help_command=None,
                         tree_cls=StemTree)
        self.settings = settings
        self._services = services
        self._reconcile_task: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        for name in COGS:
            await self.load_extension(name)
        if self._services:
            await self._start_services()

    async def _start_services(self) -> None:
        settings = self.settings
        await asyncio.to_thread(settings.work_dir.mkdir, parents=True, exist_ok=True)
        self.db = await Database.open(settings.db_path)
        self.jobs = JobStore(self.db)
        self.limits = LimitStore(self.db, settings.limits)
        self.session = aiohttp.ClientSession()
        self.inputs = InputFetcher(settings.allow_private_networks)
        self.api = JobApi(self.session, settings.api_url, settings.secret_id, settings.secret_key,
                          settings.content_id)
        self.delivery = Delivery(self, self.api, self.jobs, settings.work_dir)
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

    async def _reconcile(self) -> None:
        # Guilds (and their upload limits) are known only once the gateway is ready.
        await self.wait_until_ready()
        count = await self.tracker.reconcile()
        if count:
            log.info("following %d job(s) that were unfinished at the last stop", count)
        try:
            if taken := await self.takedowns.resume():
                log.info("finished %d takedown(s) interrupted at the last stop", taken)
        except (ApiError, discord.HTTPException) as error:
            log.warning("could not finish an interrupted takedown: %s", error)

    async def close(self) -> None:
        if self._services and hasattr(self, "tracker"):
            if self._reconcile_task is not None:
                self._reconcile_task.cancel()
            await self.listener.stop()
            await self.tracker.close()
            await self.session.close()
            await self.inputs.close()
            await self.db.close()
        await super().close()
