"""A message's fatigue decision is made once: an event checked again (retried, or claimed
again after its lease lapsed under load) keeps it, and the rule's report counts it once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.fatigue import FatigueRequest, FatigueRule
from txmsg.store import fatigue
from txmsg.store.db import Database
from txmsg.store.tables import fatigue_exclusions, fatigue_reservations

RULE = FatigueRule("daily", "all", 1, None, "P1D", 86_400)


def request(pkey: str) -> FatigueRequest:
    return FatigueRequest(pkey, "p", "email", {})


def recorded(conn: Connection) -> tuple[list[str], list[tuple[str, str]]]:
    reserved = conn.execute(sa.select(fatigue_reservations.c.pkey)).scalars().all()
    excluded = conn.execute(sa.select(fatigue_exclusions.c.pkey, fatigue_exclusions.c.rule))
    return list(reserved), [tuple(row) for row in excluded]


async def test_a_message_checked_again_keeps_its_first_decision(db: Database) -> None:
    first = await db.write(fatigue.reserve_in, [request("a"), request("b")], [RULE])
    assert first == {"a": None, "b": "daily"}
    # Checked again, in another order and beside a new one: the same answers, nothing added.
    again = await db.write(fatigue.reserve_in, [request("b"), request("a"), request("c")], [RULE])
    assert again == {"a": None, "b": "daily", "c": "daily"}
    assert await db.read(recorded) == (["a"], [("b", "daily"), ("c", "daily")])
