"""`stembot sync`: register the bot's commands with Discord (globally or in one guild)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import discord

from bot.client import StemBot
from bot.settings import BotSettings

NO_TOKEN = "error: DISCORD_TOKEN is not set: put the bot token in .env (see `stembot up`)."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync", help="register the Discord slash commands",
        description="Register /separate, /job, /jobs, /mix and the message command"
                    " \"Separate stems\" with Discord. Run it once after"
                    " installing or upgrading; the bot does not re-register at every start."
                    " A guild sees new commands at once; global ones can take up to an hour.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--guild", type=int, metavar="ID",
                       help="register in this guild only (default: DISCORD_DEV_GUILD_ID if set)")
    where.add_argument("--global", dest="everywhere", action="store_true",
                       help="register globally, for every guild the bot is in")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = BotSettings.from_env()
    if not settings.token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    guild_id = None if args.everywhere else (args.guild or settings.dev_guild_id)
    try:
        names = asyncio.run(sync(settings, guild_id))
    except discord.LoginFailure:
        print("error: Discord refused DISCORD_TOKEN; copy it again from the Developer Portal"
              " (Bot → Reset Token).", file=sys.stderr)
        return 1
    except discord.HTTPException as error:
        print(f"error: Discord refused the commands: {error}", file=sys.stderr)
        return 1
    where = f"guild {guild_id}" if guild_id else "globally (visible within an hour)"
    print(f"registered {', '.join(names)} {where}")
    return 0


async def sync(settings: BotSettings, guild_id: int | None) -> list[str]:
    """Log in over HTTP only (no gateway), register the commands, return their names."""
    bot = StemBot(settings, services=False)
    try:
        await bot.login(settings.token)
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            bot.tree.copy_global_to(guild=guild)
        commands = await bot.tree.sync(guild=guild)
        # slash commands as members type them, message commands as Discord's menu shows them
        return [f"/{c.name}" if c.type is discord.AppCommandType.chat_input
                else f"Apps → {c.name}" for c in commands]
    finally:
        await bot.close()
