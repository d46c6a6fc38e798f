"""`stembot keys`: create, list and revoke API credentials."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from service.settings import ServiceSettings
from service.store import Store, open_store

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="manage job API credentials")
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key; prints its secretId and secretKey")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.set_defaults(handler=run_create)
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its secretId")
    revoke.add_argument("secret_id", metavar="SECRET_ID")
    revoke.set_defaults(handler=run_revoke)


def with_store(action: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await open_store(ServiceSettings.from_env())
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def run_create(args: argparse.Namespace) -> int:
    key = with_store(lambda store: store.create_key(args.name))
    # The only time the secretKey is ever shown.
    print(json.dumps({"secretId": key.secret_id, "secretKey": key.secret_key,
                      "contentId": key.default_content}))
    return 0


def run_list(args: argparse.Namespace) -> int:
    for key in with_store(lambda store: store.keys()):
        print(json.dumps({"secretId": key.secret_id, "name": key.name,
                          "contentId": key.default_content, "createdAt": str(key.created_at),
                          "revoked": bool(key.revoked_at)}))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    if with_store(lambda store: store.revoke_key(args.secret_id)):
        print(f"revoked {args.secret_id}")
        return 0
    print(f"error: no active key {args.secret_id}", file=sys.stderr)
    return 1
