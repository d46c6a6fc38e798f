"""`stembot worker`: a separation node with no HTTP API, on the shared job store."""

from __future__ import annotations

import argparse
import sys

from service.app import run_worker_until_signal
from stembot import logs
from stembot.commands.serve import settings_from, start


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a separation node (no HTTP API) on the shared database",
        description="Claim jobs from STEMBOT_DATABASE_URL's store and separate them in"
                    " STEMBOT_WORKERS worker processes; SIGTERM or Ctrl-C hands its running"
                    " jobs back to the queue at once and exits.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logs.configure()
    settings = settings_from(args)
    if settings.workers < 1:
        print("error: stembot worker needs STEMBOT_WORKERS of 1 or more (0 is an API-only"
              " `stembot serve`)", file=sys.stderr)
        return 1
    where = "PostgreSQL" if settings.database_url else f"SQLite in {settings.data_dir}/"
    return start(settings, f"separation node {settings.node}: {settings.workers} workers,"
                           f" jobs from {where}", lambda: run_worker_until_signal(settings))
