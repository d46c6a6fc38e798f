"""Who may moderate: Manage Server, or the guild's configured moderator role."""

from __future__ import annotations

import discord
from discord import app_commands

from storage import GuildLimits


class NotModeratorError(app_commands.CheckFailure):
    """Raised by the moderator check; its message is shown to the member."""


def is_moderator(member: discord.Member | discord.User, limits: GuildLimits) -> bool:
    if not isinstance(member, discord.Member):
        return False
    if member.guild_permissions.manage_guild:
        return True
    role = limits.moderator_role_id
    return role is not None and any(r.id == role for r in member.roles)


def describe_requirement(limits: GuildLimits) -> str:
    role = f" or the <@&{limits.moderator_role_id}> role" if limits.moderator_role_id else ""
    return f"the Manage Server permission{role}"
