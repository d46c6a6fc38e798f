"""`stembot serve`: run the job service (the Source Separation job API)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from service.app import check_models, run_until_signal
from service.errors import StartupError
from service.settings import ServiceSettings
from stembot import logs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the job API server",
        description="Serve POST /release/job (CreateJob, GetJob, ListJobs, CancelJob) and the"
                    " content endpoints, running separations in a worker pool.",
    )
    add_listen_arguments(parser)
    parser.set_defaults(handler=run)


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """--host and --port, which `serve` and `up` share."""
    parser.add_argument("--host", help="address to listen on (default: STEMBOT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: STEMBOT_PORT or 8080)")


def settings_from(args: argparse.Namespace) -> ServiceSettings:
    settings = ServiceSettings.from_env()
    if getattr(args, "host", None):
        settings = settings.with_changes(host=args.host)
    if getattr(args, "port", None) is not None:
        settings = settings.with_changes(port=args.port)
    return settings


def start(settings: ServiceSettings, banner: str,
          main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run `main` after the banner; a service that cannot start says why in one line: status 1."""
    try:
        check_models(settings)  # before the banner, so the reason is all that is printed
        print(banner, flush=True)
        asyncio.run(main())
    except StartupError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    logs.configure()
    settings = settings_from(args)
    return start(settings, f"job service on http://{settings.host}:{settings.port}, data in"
                           f" {settings.data_dir}/", lambda: run_until_signal(settings))
