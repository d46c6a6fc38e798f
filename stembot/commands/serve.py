"""`stembot serve`: run the job service (the Source Separation job API)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from service.app import run_until_signal
from service.settings import ServiceSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the job API server",
        description="Serve POST /release/job (CreateJob, GetJob, ListJobs, CancelJob) and the"
                    " content endpoints, running separations in a worker pool.",
    )
    parser.add_argument("--host", help="address to listen on (default: STEMBOT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: STEMBOT_PORT or 8080)")
    parser.set_defaults(handler=run)


def settings_from(args: argparse.Namespace) -> ServiceSettings:
    settings = ServiceSettings.from_env()
    if getattr(args, "host", None):
        settings = settings.with_changes(host=args.host)
    if getattr(args, "port", None) is not None:
        settings = settings.with_changes(port=args.port)
    return settings


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = settings_from(args)
    print(f"job service on http://{settings.host}:{settings.port}, data in {settings.data_dir}/",
          flush=True)
    asyncio.run(run_until_signal(settings))
    return 0
