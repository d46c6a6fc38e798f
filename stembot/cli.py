"""The `stembot` console script: one parser, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from dotenv import load_dotenv

from separation.env import SettingError

# Each module defines `register(subparsers)`, which adds its commands and sets `handler`.
COMMAND_MODULES = (
    "stembot.commands.separate",
    "stembot.commands.models",
    "stembot.commands.serve",
    "stembot.commands.worker",
    "stembot.commands.keys",
    "stembot.commands.link",
    "stembot.commands.up",
    "stembot.commands.sync",
)


class Handler(Protocol):
    def __call__(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stembot",
        description="Self-hosted music stem separation: engine, job API server and Discord bot.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv()
    args = build_parser().parse_args(argv)
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
