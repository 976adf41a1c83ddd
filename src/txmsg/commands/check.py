"""`txmsg check`: settings, database and every provider of every channel configuration, a
line each.

Each provider of a configuration is checked, its fallbacks too, all at once, each within
`PROBE_TIMEOUT_SECONDS`, the way a send would reach it and with its stored credentials:
- an SMTP relay: connect, EHLO, STARTTLS (when configured) and AUTH (when a username is set),
  then QUIT. No mail is sent.
- a Twilio account: an authenticated `GET /2010-04-01/Accounts/{Sid}.json` at the
  configured `api_base_url` (the account must be active). No message is created.

A failure says at which step and why, in the provider's own words (never a password or token).
The exit status is 1 when any check fails, and 3 (as every command) when the database cannot be
used at all: none yet, unreachable, at another schema, or sealed with a key that is not here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from txmsg.commands.database import STARTUP_FAILURE, NoDatabase, open_existing
from txmsg.config import Settings, unknown_variables
from txmsg.core.channel_config import channel_settings
from txmsg.core.delivery import SendError
from txmsg.core.email_config import EmailSettings, SMTPSettings
from txmsg.core.twilio_config import TwilioSettings
from txmsg.store import channel_configs
from txmsg.store.db import Database

# Each step of an SMTP probe (connect, EHLO, STARTTLS, AUTH) and a Twilio request; a probe
# as a whole gets twice as long.
PROBE_TIMEOUT_SECONDS = 5.0

Say = Callable[[bool, str], None]


@dataclass(frozen=True, slots=True)
class Probe:
    """One provider of one channel configuration, and how to check it."""

    label: str  # e.g. "channel configuration 'mail' (email): 127.0.0.1:25 (fallback 1)"
    run: Callable[[], Awaitable[str]]  # what went well; raises SendError on a failure


def _where(host: str, port: int, index: int) -> str:
    return f"{host}:{port}" + (f" (fallback {index})" if index else "")


def _smtp(label: str, smtp: SMTPSettings, index: int) -> Probe:
    from txmsg.channels.smtp import probe

    return Probe(
        f"{label}: {_where(smtp.host, smtp.port, index)}",
        lambda: probe(smtp, PROBE_TIMEOUT_SECONDS),
    )


def _twilio(label: str, twilio: TwilioSettings, index: int) -> Probe:
    url = urlsplit(twilio.api_base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    where = _where(url.hostname or "", port, index)

    async def run() -> str:
        from txmsg.channels.twilio import TwilioSender

        sender = TwilioSender(twilio)
        try:
            return await sender.probe(PROBE_TIMEOUT_SECONDS)
        finally:
            await sender.close()

    return Probe(f"{label}: Twilio account {twilio.account_sid} at {where}", run)


def probes_of(label: str, channel: str, settings: object, secrets: object) -> list[Probe]:
    """The providers of a stored channel configuration, its primary then its fallbacks."""
    typed = channel_settings(channel, settings or {}, secrets or {})  # type: ignore[arg-type]
    if isinstance(typed, EmailSettings):
        relays = (typed.smtp, *typed.fallbacks)
        return [_smtp(label, smtp, i) for i, smtp in enumerate(relays)]
    accounts = (typed.twilio, *typed.fallbacks)
    return [_twilio(label, twilio, i) for i, twilio in enumerate(accounts)]


async def outcome(probe: Probe) -> tuple[bool, str]:
    """(whether the provider passed, what to say of it)."""
    limit = 2 * PROBE_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(limit):
            return True, f"{probe.label}: {await probe.run()}"
    except TimeoutError:
        return False, f"{probe.label}: no answer within {limit:g} s"
    except SendError as exc:
        return False, f"{probe.label}: {_failure(exc)}"


def _failure(exc: SendError) -> str:
    stage = getattr(exc, "stage", None)  # SMTP: the step that failed
    fault = f" ({exc.fault})" if exc.fault else ""
    return f"{stage + ' ' if stage else ''}failed{fault}: {exc.reason}"


async def _providers(db: Database, say: Say) -> None:
    rows = await db.read(channel_configs.list_all)
    if not rows:
        say(True, "channel configurations: none yet")
    probes: list[Probe | str] = []
    for row in rows:
        label = f"channel configuration {row.name!r} ({row.channel})"
        try:
            probes += probes_of(label, row.channel, row.settings, row.secrets)
        except Exception as exc:  # noqa: BLE001 - a stored configuration this code cannot read
            probes.append(f"{label}: its settings cannot be read ({type(exc).__name__})")
    checked = await asyncio.gather(
        *(outcome(p) for p in probes if isinstance(p, Probe)),
    )
    results = iter(checked)
    for p in probes:
        ok, line = next(results) if isinstance(p, Probe) else (False, p)
        say(ok, line)


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
        return STARTUP_FAILURE  # nothing else can be checked
    try:
        say(True, "database: reachable, schema at the latest revision")
        await _providers(db, say)
    finally:
        await db.dispose()
    return 1 if failures else 0
