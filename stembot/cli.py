"""The `stembot` console script: one parser, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from dotenv import load_dotenv

from separation.env import SettingError

# Each module defines `register(subparsers)`, which adds its command and sets `handler`.
COMMANDS = ("separate", "models", "serve", "worker", "keys", "link", "up", "sync")


class Handler(Protocol):
    def __call__(self, args: argparse.Namespace) -> int: ...


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser, or just `only`'s: a command's module imports what it runs with
    (the engine, the server, discord.py), and loading all of them took a second of each run."""
    parser = argparse.ArgumentParser(
        prog="stembot",
        description="Self-hosted music stem separation: engine, job API server and Discord bot.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"stembot.commands.{name}").register(subparsers)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named first on the line; None for `--help`, a typo or nothing (all load)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv()
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(chosen_command(words)).parse_args(words)
    handler: Handler = args.handler
    try:
        return handler(args)
    except SettingError as error:  # any part's settings: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
