"""`/jobs history` and `/jobs limits`: for moderators, enforced by a real permission check."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.messages import MESSAGE_LIMIT, history_line, plain, shorten
from bot.mixing import POSTED, MixAsk
from bot.permissions import NotModeratorError, describe_requirement, is_moderator
from storage import HistoryFilter, JobRecord, JobState

if TYPE_CHECKING:
    from bot.client import StemBot

PAGE_SIZE = 5
_SPAN = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
_LEFT_OUT = "\n… (the rest of this page does not fit in one message)"


def parse_since(text: str, now: float | None = None) -> float:
    """`24h`, `7d`, `2w` ago, or a date `YYYY-MM-DD` (UTC) as epoch seconds."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    match = _SPAN.match(value)
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValueError(
            f"{plain(text)} is not a time: use 24h, 7d, 2w or a date like 2026-01-31"
        ) from None


async def moderator_only(interaction: discord.Interaction) -> bool:
    bot = cast("StemBot", interaction.client)
    if interaction.guild_id is None:
        raise NotModeratorError("this command works only in a server.")
    limits = await bot.limits.get(interaction.guild_id)
    if not is_moderator(interaction.user, limits):
        raise NotModeratorError(f"this needs {describe_requirement(limits)}.")
    return True


class HistoryPages(discord.ui.View):
    """Previous/Next buttons over one history query; only its moderator may press them."""

    def __init__(self, bot: StemBot, where: HistoryFilter, total: int, owner_id: int) -> None:
        super().__init__(timeout=600)
        self.bot, self.where, self.total, self.owner_id = bot, where, total, owner_id
        self.page = 0

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    async def mixes(self, record: JobRecord) -> tuple[str, ...]:
        """The mixes of the job posted in Discord (buttons, /mix), by name."""
        parts = await self.bot.jobs.delivered(record.id)
        asks = [MixAsk.parse(p.removeprefix(POSTED)) for p in sorted(parts)
                if p.startswith(POSTED)]
        return tuple(ask.label.replace(" mix", "", 1) for ask in asks if ask is not None)

    async def render(self) -> str:
        records = await self.bot.jobs.history(self.where, self.page * PAGE_SIZE, PAGE_SIZE)
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1
        lines = [history_line(r, await self.mixes(r)) for r in records] or ["no jobs match."]
        text = (f"**Job history** — page {self.page + 1}/{self.pages}"
                f" ({self.total} jobs)")
        # Discord refuses longer messages: whole jobs only, and say when some are left out.
        for number, line in enumerate(lines):
            room = MESSAGE_LIMIT - (0 if number == len(lines) - 1 else len(_LEFT_OUT))
            if len(text) + 1 + len(line) > room:
                return shorten(text + _LEFT_OUT, MESSAGE_LIMIT)
            text += "\n" + line
        return text

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.owner_id

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction,
                       button: discord.ui.Button[HistoryPages]) -> None:
        self.page = max(0, self.page - 1)
        await interaction.response.edit_message(content=await self.render(), view=self)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction,
                   button: discord.ui.Button[HistoryPages]) -> None:
        self.page = min(self.pages - 1, self.page + 1)
        await interaction.response.edit_message(content=await self.render(), view=self)


# Hidden from members without Manage Server by default; `moderator_only` enforces it anyway,
# since server admins can change who sees a command.
@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Jobs(commands.GroupCog, group_name="jobs", group_description="Moderate separation jobs"):
    """Job history and per-server limits."""

    def __init__(self, bot: StemBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="history", description="Jobs in this server (moderators)")
    @app_commands.check(moderator_only)
    @app_commands.describe(user="Only this member", status="Only this state",
                           since="Only since: 24h, 7d, 2w or YYYY-MM-DD")
    @app_commands.choices(status=[Choice(name=s.value, value=s.value) for s in JobState])
    async def history(
        self, interaction: discord.Interaction, user: discord.User | None = None,
        status: Choice[str] | None = None, since: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        try:
            after = parse_since(since) if since else None
        except ValueError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        where = HistoryFilter(interaction.guild_id, user.id if user else None,
                              JobState(status.value) if status else None, after)
        total = await self.bot.jobs.history_count(where)
        view = HistoryPages(self.bot, where, total, interaction.user.id)
        await interaction.response.send_message(await view.render(), view=view, ephemeral=True)

    @app_commands.command(name="limits", description="Show or change this server's limits")
    @app_commands.check(moderator_only)
    @app_commands.describe(
        max_concurrent="Jobs one member may run at once (0: no limit)",
        daily_quota="Jobs one member may submit per 24 hours (0: no limit)",
        cooldown_seconds="Seconds between one member's submissions",
        max_minutes="Longest track accepted, in minutes",
        max_mib="Largest file accepted, in MiB",
        moderator_role="A role that may moderate besides Manage Server",
        server_jobs="Jobs this whole server may have queued or running (0: no limit)",
    )
    async def limits(
        self, interaction: discord.Interaction,
        max_concurrent: app_commands.Range[int, 0, 100] | None = None,
        daily_quota: app_commands.Range[int, 0, 10_000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 86_400] | None = None,
        max_minutes: app_commands.Range[int, 1, 24 * 60] | None = None,
        max_mib: app_commands.Range[int, 1, 10_000] | None = None,
        moderator_role: discord.Role | None = None,
        server_jobs: app_commands.Range[int, 0, 1000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        changes: dict[str, int] = {}
        for name, value in (("max_concurrent", max_concurrent), ("daily_quota", daily_quota),
                            ("cooldown_seconds", cooldown_seconds), ("max_mib", max_mib),
                            ("max_server_jobs", server_jobs)):
            if value is not None:
                changes[name] = value
        if max_minutes is not None:
            changes["max_seconds"] = max_minutes * 60
        if moderator_role is not None:
            # Choosing who moderates is for Manage Server alone, not for the role itself.
            perms = interaction.permissions
            if not perms.manage_guild:
                await interaction.response.send_message(
                    "only members with Manage Server may set the moderator role.",
                    ephemeral=True)
                return
            changes["moderator_role_id"] = moderator_role.id
        current = await self.bot.limits.set(interaction.guild_id, **changes)
        role = f"<@&{current.moderator_role_id}>" if current.moderator_role_id else "none"
        await interaction.response.send_message(
            f"{'updated' if changes else 'current'} limits: {current.max_concurrent} running"
            f" jobs per member, {current.daily_quota} per 24 h, {current.cooldown_seconds} s"
            f" cooldown, tracks up to {current.max_seconds // 60} min and {current.max_mib} MiB;"
            f" {current.max_server_jobs or 'unlimited'} open jobs per server;"
            f" moderator role: {role}", ephemeral=True)


async def setup(bot: StemBot) -> None:
    await bot.add_cog(Jobs(bot))
