"""`stembot link`: mint a signed, expiring download link for a stored file."""

from __future__ import annotations

import argparse
import sys

from service.auth import link_secret, sign_link
from service.content import clean_path
from service.errors import ApiError
from service.settings import ServiceSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "link", help="print a signed download link for a file in a content repository")
    parser.add_argument("content_id", metavar="CONTENT_ID")
    parser.add_argument("path", metavar="PATH", help="path inside the repository")
    parser.add_argument("--expires", type=int, default=None, metavar="SECONDS",
                        help="lifetime (default: STEMBOT_LINK_TTL, 7 days)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = ServiceSettings.from_env()
    try:
        rel = clean_path(args.path, "PATH", root_slash=True)
    except ApiError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    secret = link_secret(settings.data_dir, settings.link_secret)
    url, _ = sign_link(secret, settings.content_url or settings.base_url, args.content_id, rel,
                       args.expires or settings.link_ttl)
    print(url)
    return 0
