"""`txmsg check`: settings, database and every channel configuration's provider, a line each.

Providers are checked by opening a TCP connection to the SMTP host's port or to the Twilio API
base URL's host and port (no mail is sent, no credential is used). The exit status is 1 when
any check fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

from txmsg.commands.database import NoDatabase, open_existing
from txmsg.config import Settings, unknown_variables
from txmsg.core.channel_config import channel_settings
from txmsg.core.email_config import EmailSettings
from txmsg.store import channel_configs
from txmsg.store.db import Database

CONNECT_TIMEOUT_SECONDS = 5.0

Say = Callable[[bool, str], None]


def provider_address(channel: str, settings: object, secrets: object) -> tuple[str, int]:
    """The host and port a channel configuration's sends connect to."""
    typed = channel_settings(channel, settings or {}, secrets or {})  # type: ignore[arg-type]
    if isinstance(typed, EmailSettings):
        return typed.smtp.host, typed.smtp.port
    url = urlsplit(typed.twilio.api_base_url)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


async def reachable(host: str, port: int) -> str | None:
    """None when a TCP connection opens; else why not."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    return None


async def _providers(db: Database, say: Say) -> None:
    rows = await db.read(channel_configs.list_all)
    if not rows:
        say(True, "channel configurations: none yet")
    for row in rows:
        label = f"channel configuration {row.name!r} ({row.channel})"
        try:
            host, port = provider_address(row.channel, row.settings, row.secrets)
        except Exception as exc:  # noqa: BLE001 - a stored configuration this code cannot read
            say(False, f"{label}: its settings cannot be read ({type(exc).__name__})")
            continue
        problem = await reachable(host, port)
        say(problem is None, f"{label}: {host}:{port} " + (problem or "reachable"))


async def run_check(_args: object, settings: Settings) -> int:
    failures = 0

    def say(ok: bool, line: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  {line}")

    say(True, "settings: valid")
    for line in unknown_variables():  # a warning: the command runs all the same
        print(f"warn  settings: {line}")
    try:
        db = await open_existing(settings)
    except NoDatabase as exc:
        say(False, f"database: {exc}")
        return 1
    try:
        say(True, "database: reachable, schema at the latest revision")
        await _providers(db, say)
    finally:
        await db.dispose()
    return 1 if failures else 0
