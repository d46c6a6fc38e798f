"""`stembot up`: the main job on the embedded defaults (SQLite, the local file store)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from typing import Any

from bot.settings import BotSettings
from service.session import SIGN_IN_TTL, owner_link
from service.settings import ServiceSettings
from stembot import logs
from stembot.commands.serve import add_listen_arguments, settings_from, start
from stembot.launch import BotKeyError, bot_key_file, read_bot_key, run_up


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up", help="start the job service and the Discord bot on the embedded defaults",
        description="Start the job service on SQLite and the local file store, and the Discord"
                    " bot beside it when DISCORD_TOKEN is set; Ctrl-C stops them.",
    )
    add_listen_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logs.configure()
    settings = settings_from(args)
    banner = (f"stembot job service: http://{settings.host}:{settings.port}/release/job\n"
              f"  in a browser: http://{settings.host}:{settings.port}/ (sign in with a key,"
              f" separate a song, play its stems)\n"
              f"  data: {settings.data_dir}/ (SQLite + content repositories)\n"
              f"  API document: http://{settings.host}:{settings.port}/openapi.json\n"
              f"  create a key: stembot keys create --name NAME\n"
              f"  Ctrl-C stops it; queued and running jobs resume at the next start.")
    bot = BotSettings.from_env()
    try:
        key_file = bot_key_file(bot)
        if key_file is not None:
            read_bot_key(key_file)  # before the banner: a refusal is all that is printed
        # The bot runs in the same event loop; without DISCORD_TOKEN it says how to set one up.
        return start(settings, banner, lambda: signed_in_first(settings, run_up(settings, bot)))
    except BotKeyError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1


async def signed_in_first(settings: ServiceSettings, main: Coroutine[Any, Any, None]) -> None:
    """On a fresh data folder, a key for the local owner and a one-click sign-in link to it,
    printed with the start-up lines (the terminal only: never logged); then `main`."""
    try:
        link = await owner_link(settings)
    except BaseException:
        main.close()  # never awaited
        raise
    if link:
        print(f"  sign in (first start; one click, once, within {SIGN_IN_TTL // 60} minutes):"
              f" {link}", flush=True)
    await main
