"""`txmsg keys create|list|revoke`: API keys from the command line (the store's functions,
imported when a command runs: the parser is built for every command, --help included)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from txmsg.commands.database import open_existing
from txmsg.config import Settings
from txmsg.core.roles import ROLES


def add_parser(sub: Any, parents: list[argparse.ArgumentParser], formatter: Any) -> None:
    keys = sub.add_parser(
        "keys", help="create, list and revoke API keys", formatter_class=formatter
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = keys_sub.add_parser(
            name, help=text, description=text, parents=parents, formatter_class=formatter
        )
        return made

    create = command("create", "create a key; prints its secret once")
    create.add_argument("--role", required=True, choices=ROLES, help="what the key may do")
    create.add_argument("--label", required=True, help="who or what uses it (shown in lists)")
    create.set_defaults(func=run_create)
    command("list", "list the keys not revoked").set_defaults(func=run_list)
    revoke = command(
        "revoke",
        # Each running process caches a key it knows for 5 s (store.keys.KeyResolver).
        "revoke a key: refused at once by new processes, within 5 s by running ones",
    )
    revoke.add_argument("id", help="the key's id (see `txmsg keys list`)")
    revoke.set_defaults(func=run_revoke)


async def run_create(args: argparse.Namespace, settings: Settings) -> int:
    if not args.label.strip() or len(args.label) > 200:
        print("txmsg: --label must be 1 to 200 characters", file=sys.stderr)
        return 2
    from txmsg.store.keys import create_key

    db = await open_existing(settings)
    try:
        view, secret = await db.write(create_key, args.role, args.label)
    finally:
        await db.dispose()
    print(f"id: {view['id']}\nrole: {view['role']}\nlabel: {view['label']}")
    print(f"key: {secret}")
    print("(the key is shown once: keep it now)")
    return 0


async def run_list(_args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.store.keys import list_keys

    db = await open_existing(settings)
    try:
        rows = await db.read(list_keys)
    finally:
        await db.dispose()
    print(f"{'id':<16}  {'role':<8}  {'created_at':<25}  label")
    for row in rows:
        created = row["created_at"].isoformat(timespec="seconds")
        print(f"{row['id']:<16}  {row['role']:<8}  {created:<25}  {row['label']}")
    return 0


async def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.store.keys import revoke_key

    db = await open_existing(settings)
    try:
        revoked = await db.write(revoke_key, args.id)
    finally:
        await db.dispose()
    if not revoked:
        print(f"txmsg: no key {args.id!r} (unknown or already revoked)", file=sys.stderr)
        return 1
    print(f"key {args.id} revoked")
    return 0
