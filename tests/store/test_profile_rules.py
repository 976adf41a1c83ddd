"""The pure rules of profile-based messages, and the schema their migration creates."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from txmsg.core.bounces import is_hard_bounce, is_soft_bounce
from txmsg.core.errors import DomainError
from txmsg.core.fatigue import FatigueRequest, FatigueRule, Sent, decide, fits, parse_period
from txmsg.core.reconciliation import Reconciliation
from txmsg.core.timeutil import utcnow
from txmsg.core.unsubscribe import UnsubscribeClaim, make_token, read_token
from txmsg.store.db import Database


@pytest.mark.parametrize(
    ("reply", "hard"),
    [
        ("550 5.1.1 <a@b.org>: Recipient address rejected: User unknown", True),
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound", True),
        ("553 5.1.3 bad destination mailbox address syntax", True),
        ("550 No such user here", True),
        ("551 User not local; mailbox does not exist", True),
        ("554 5.7.1 Message rejected as spam", False),
        ("552 5.3.4 Message size exceeds fixed limit", False),
        ("550 5.7.1 Relaying denied", False),
        ("450 4.1.1 user unknown (try later)", False),
    ],
)
def test_hard_bounces_are_missing_mailboxes(reply: str, hard: bool) -> None:
    assert is_hard_bounce(reply) is hard


def test_soft_bounces() -> None:
    assert is_soft_bounce("452 4.2.2 Mailbox full")
    assert is_soft_bounce("452 mailbox is full")
    assert not is_soft_bounce("421 4.7.0 try again later")
    assert not is_soft_bounce("552 5.2.2 mailbox full")  # permanent: not a soft bounce


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("P7D", 7 * 86400), ("P1W", 7 * 86400), ("PT12H", 43200), ("P1DT6H", 108000), ("PT2S", 2)],
)
def test_periods(text: str, seconds: int) -> None:
    assert parse_period(text) == (text, seconds)


@pytest.mark.parametrize("text", ["P", "PT", "P1M", "P1Y", "P1DT", "7D", "P400D", "PT0S", 7, None])
def test_bad_periods(text: object) -> None:
    with pytest.raises(DomainError):
        parse_period(text)


@pytest.mark.parametrize(
    "text",
    [
        "P883W6283640038824D",
        "P99999999999999D",
        "PT99999999999999999999S",
        "P" + "9" * 5000 + "D",
    ],
)
def test_periods_out_of_range_are_400s_naming_the_field(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_period(text)
    assert caught.value.status == 400
    assert caught.value.errors[0].field == "period"


def test_a_period_is_read_whatever_its_leading_zeros() -> None:
    text = "P" + "0" * 5000 + "1D"
    assert parse_period(text) == (text, 86400)


def test_decide_counts_in_order_within_the_window() -> None:
    now = utcnow()
    rule = FatigueRule("r", "email", 2, None, "P1D", 86400)
    history = {
        "p": [Sent("email", now - timedelta(hours=25)), Sent("email", now - timedelta(hours=1))],
        "q": [Sent("sms", now - timedelta(hours=1))],
    }
    requests = [FatigueRequest(f"k{i}", pid, "email", {}) for i, pid in enumerate("ppqqq")]
    decided = decide(requests, [rule], history, now)
    # p: one message in the window, one more allowed; q: its SMS does not count for email.
    assert decided == {"k0": None, "k1": "r", "k2": None, "k3": None, "k4": "r"}
    everything = FatigueRule("all", "all", 1, None, "P1D", 86400)
    assert decide([FatigueRequest("s", "q", "email", {})], [everything], history, now) == {
        "s": "all"
    }
    own = FatigueRule("own", "all", None, "cap", "P1D", 86400)
    assert own.limit_for({"cap": 3}) == 3
    assert own.limit_for({"cap": "3"}) is None and own.limit_for({}) is None


def test_every_window_holding_the_message_is_checked() -> None:
    now = utcnow()
    day = timedelta(days=1)

    def h(hours: float):
        return now + timedelta(hours=hours)

    assert fits([], now, day, 1)
    assert not fits([h(-23)], now, day, 1)
    assert fits([h(-25)], now, day, 1)
    assert not fits([h(12)], now, day, 1)  # scheduled for later: counted now
    assert fits([h(25)], now, day, 1)
    assert fits([h(-20), h(20)], now, day, 2)  # no one window holds all three
    assert not fits([h(-10), h(10)], now, day, 2)
    assert not fits([h(1)], now, day, 0)


def test_tokens_are_signed_and_bound_to_their_profile() -> None:
    claim = UnsubscribeClaim("email", "ada", "PKEY1")
    token = make_token("secret", claim)
    assert read_token("secret", token) == claim
    assert read_token("other secret", token) is None
    payload, signature = token.split(".")
    bob = make_token("secret", UnsubscribeClaim("email", "bob", "PKEY1")).split(".")[0]
    assert read_token("secret", f"{bob}.{signature}") is None
    assert read_token("secret", f"{payload}.{signature[:-1]}A") in (None, claim)
    assert read_token("secret", "") is None and read_token("secret", "é.é") is None


def test_reconciliation_keys() -> None:
    by_email = Reconciliation("email", "email")
    assert by_email.key("Ada@EXAMPLE.org", {}) == "Ada@example.org"
    assert by_email.key(None, {}) is None
    by_ctx = Reconciliation("ctx.customer", "profile_id")
    assert by_ctx.key(None, {"customer": 42}) == "42"
    assert by_ctx.key(None, {"customer": True}) is None
    by_phone = Reconciliation("ctx.phone", "mobilePhone")
    assert by_phone.key(None, {"phone": "+33 6 12 34 56 78"}) == "+33612345678"
    assert by_phone.key(None, {"phone": "nope"}) is None


async def test_old_reservations_are_purged(database_url: str) -> None:
    from txmsg.store import fatigue
    from txmsg.store.tables import fatigue_reservations

    db = Database(database_url)
    try:
        await db.migrate()
        now = utcnow()

        def seed(conn: sa.engine.Connection) -> None:
            conn.execute(
                sa.insert(fatigue_reservations),
                [
                    {
                        "pkey": "old",
                        "profile_id": "p",
                        "channel": "email",
                        "at": now - timedelta(days=400),
                    },
                    {"pkey": "new", "profile_id": "p", "channel": "email", "at": now},
                ],
            )

        def left(conn: sa.engine.Connection) -> list[str]:
            return list(conn.execute(sa.select(fatigue_reservations.c.pkey)).scalars())

        await db.write(seed)
        assert await db.write(fatigue.purge_reservations) == 1
        assert await db.read(left) == ["new"]
    finally:
        await db.dispose()


async def test_concurrent_bounces_add_up_and_keep_the_quarantine(db: Database) -> None:
    """Two write transactions bounce one address at once (on PostgreSQL the second waits on
    the first's row): a hard bounce then a soft one keeps the quarantine, soft ones add up."""
    from txmsg.store import typology
    from txmsg.store.tables import quarantine

    def bounce(conn: sa.engine.Connection, address: str, hard: bool, before: float) -> None:
        postgres = conn.dialect.name == "postgresql"
        if postgres and before:  # start once the other transaction holds the row
            conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": before})
        typology.record_bounces(
            conn, [typology.AddressBounce("email", address, hard, "550 5.1.1")], []
        )
        if postgres and not before:  # hold the row (uncommitted) while the other one writes
            conn.execute(sa.text("SELECT pg_sleep(0.6)"))

    await asyncio.gather(
        db.write(bounce, "ada@example.org", True, 0),
        db.write(bounce, "ada@example.org", False, 0.2),
        db.write(bounce, "bo@example.org", False, 0),
        db.write(bounce, "bo@example.org", False, 0.2),
    )

    def state(conn: sa.engine.Connection) -> dict[str, tuple[int, bool]]:
        rows = conn.execute(sa.select(quarantine))
        return {r.address: (r.soft_bounces, r.quarantined_at is not None) for r in rows}

    assert await db.read(state) == {"ada@example.org": (0, True), "bo@example.org": (2, False)}
    await db.write(bounce, "bo@example.org", False, 0)  # the third soft bounce quarantines
    assert (await db.read(state))["bo@example.org"] == (3, True)
