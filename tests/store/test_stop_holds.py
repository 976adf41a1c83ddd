"""A STOP's hold beside the bounces' in one quarantine row: whichever held the number first
stays what it is, and a STOP holds a number that soft bounces had not yet."""

from __future__ import annotations

import sqlalchemy as sa

from txmsg.core.delivery import ProviderOptOut
from txmsg.store import typology
from txmsg.store.db import Database
from txmsg.store.tables import quarantine

STOP = "Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient"
NUMBERS = ("+14155552671", "+14155552672", "+14155552673")


def _stop(conn: sa.engine.Connection, pkey: str, number: str) -> None:
    typology.record_opt_out_in(conn, ProviderOptOut(pkey, "smsEvt", "sms", number, STOP))


def _bounce(conn: sa.engine.Connection, number: str, hard: bool) -> None:
    bounce = typology.AddressBounce("sms", number, hard, "Twilio error 30005 (HTTP 400)")
    typology.record_bounces(conn, [bounce], [])


def _seed(conn: sa.engine.Connection) -> None:
    soft, stopped, dead = NUMBERS
    _bounce(conn, soft, False)  # counted, not held
    _stop(conn, "P1", soft)  # the STOP holds it
    _stop(conn, "P2", stopped)
    _bounce(conn, stopped, True)  # already held as a STOP: stays one
    _bounce(conn, dead, True)
    _stop(conn, "P3", dead)  # already held as a bounce: stays one


def _state(conn: sa.engine.Connection) -> dict[str, tuple[bool, bool, str]]:
    rows = conn.execute(sa.select(quarantine))
    return {r.address: (r.quarantined_at is not None, r.opted_out, r.reason[:18]) for r in rows}


async def test_the_first_hold_stays(db: Database) -> None:
    await db.write(_seed)
    soft, stopped, dead = NUMBERS
    assert await db.read(_state) == {
        soft: (True, True, "Twilio error 21610"),
        stopped: (True, True, "Twilio error 21610"),
        dead: (True, False, "Twilio error 30005"),
    }
    held = {("sms", n) for n in NUMBERS} | {("sms", "+14155552674")}
    bounced, stops = await db.read(typology.held_addresses, held)
    assert (bounced, stops) == ({("sms", dead)}, {("sms", soft), ("sms", stopped)})
