"""Rate-limit counters (store/rate_windows.py) and claims under channel caps (queue/capped.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from queue_support import LEASE, event_row, hook, new_event
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection

from txmsg.core.queue import PRIORITY_BULK, Outcome
from txmsg.core.rate_limit import DAY_MS, SECOND_MS, ChannelCap, Window
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import rate_windows
from txmsg.store.db import Database
from txmsg.store.queue import capped
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.rate_windows import Take
from txmsg.store.tables import channel_configs, event_configs

T0 = 1_800_000_000_000  # an epoch-milliseconds instant at a second's start


def take(conn: Connection, window: Window, want: int, now_ms: int) -> int:
    return rate_windows.take_in(conn, [Take(window, want, now_ms)])[window.scope].tokens


async def test_a_window_gives_at_most_its_cap_then_starts_afresh(db: Database) -> None:
    window = Window("w", SECOND_MS, 5)
    assert await db.write(take, window, 3, T0) == 3
    assert await db.write(take, window, 3, T0 + 10) == 2
    assert await db.write(take, window, 3, T0 + 999) == 0
    # A process whose clock is behind counts against the current window.
    assert await db.write(take, window, 3, T0 - 500) == 0
    assert await db.write(take, window, 9, T0 + 1000) == 5
    await db.write(rate_windows.give_back_in, [("w", T0 + 1000, 2)])
    assert await db.write(take, window, 9, T0 + 1500) == 2


async def test_two_connections_share_the_tokens(db: Database, database_url: str) -> None:
    """Two database objects (two pools, as two processes have) take from one counter at
    once: never more than the cap between them."""
    first, second = db, Database(database_url)
    try:
        window = Window("shared", DAY_MS, 50)
        grants = await asyncio.gather(
            *(db.write(take, window, 3, T0) for db in (first, second) for _ in range(15))
        )
        assert sum(grants) == 50 and max(grants) == 3
    finally:
        await second.dispose()


async def test_a_per_day_window_spans_the_utc_day(db: Database) -> None:
    day = ChannelCap(per_day=4).windows("mail")[0]
    midnight = T0 - T0 % DAY_MS
    assert await db.write(take, day, 3, midnight + 1) == 3
    assert await db.write(take, day, 3, midnight + DAY_MS - 1) == 1
    assert await db.write(take, day, 3, midnight + DAY_MS) == 3


def cap(conn: Connection, name: str, rate_limit: dict[str, int]) -> None:
    conn.execute(
        sa.update(channel_configs)
        .where(channel_configs.c.name == name)
        .values(settings={"rate_limit": rate_limit})
    )


async def test_claims_take_tokens_transactional_first_and_hold_bulk(db: Database) -> None:
    await db.write(hook, "EVTcapped")
    await db.write(hook, "EVTfree")
    # No share kept back from bulk here (see the tests below for the reserve).
    await db.write(cap, "mail", {"per_second": 3, "per_day": 100, "bulk_share": 100})
    caps = await db.read(capped.load_caps)
    assert caps.held == {"EVTcapped", "EVTfree"}  # both go through "mail"
    bulk = [new_event("EVTcapped", priority=1) for _ in range(4)]
    urgent = [new_event("EVTcapped", priority=0) for _ in range(2)]
    # Fresh events of a capped channel are not leased at insert, whatever the room.
    first = await db.write(
        write_cycle, CycleRequest(new=[*bulk, *urgent], free=50, lease=LEASE, caps=caps)
    )
    assert first.leased == []
    before = utcnow().timestamp() * 1000
    claim = await db.write(
        write_cycle, CycleRequest(free=50, claim_limit=50, lease=LEASE, caps=caps)
    )
    after = utcnow().timestamp() * 1000
    # Three tokens this second: both transactional events, then the oldest bulk one.
    assert {e.pkey for e in claim.claimed} == {urgent[0].pkey, urgent[1].pkey, bulk[0].pkey}
    assert claim.held_until_ms is not None
    # Held until the claim's one-second window ends (the claim ran between the two readings).
    assert before < claim.held_until_ms <= after + 1000
    for held in bulk[1:]:
        row = await db.read(event_row, held.pkey)
        assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)
    # The window ends: the held ones go, and the unspent token is given back.
    await asyncio.sleep(max(0.0, claim.held_until_ms / 1000 - utcnow().timestamp()) + 0.01)
    again = await db.write(
        write_cycle, CycleRequest(free=50, claim_limit=50, lease=LEASE, caps=caps)
    )
    assert {e.pkey for e in again.claimed} == {e.pkey for e in bulk[1:]}
    used = await db.read(
        lambda c: c.execute(
            sa.text("SELECT used FROM rate_windows WHERE scope LIKE '%day'")
        ).scalar_one()
    )
    assert used == 6  # 3 + 3 taken by the claims
    # Nothing left due: the tokens a claim took and could not spend are given back.
    await asyncio.sleep(1.0 - utcnow().timestamp() % 1.0 + 0.01)
    last = await db.write(
        write_cycle, CycleRequest(free=50, claim_limit=50, lease=LEASE, caps=caps)
    )
    assert last.claimed == [] and last.held_until_ms is None
    assert (
        await db.read(
            lambda c: c.execute(
                sa.text("SELECT used FROM rate_windows WHERE scope LIKE '%day'")
            ).scalar_one()
        )
        == 6
    )


async def test_uncapped_event_types_claim_as_before(db: Database) -> None:
    await db.write(hook, "EVTplain")
    caps = await db.read(capped.load_caps)
    assert caps == capped.NO_CAPS
    events = [new_event("EVTplain") for _ in range(5)]
    await db.write(write_cycle, CycleRequest(new=events))
    claim = await db.write(
        write_cycle,
        CycleRequest(claim_limit=10, free=10, lease=timedelta(seconds=5), caps=caps),
    )
    assert len(claim.claimed) == 5 and claim.held_until_ms is None


def claim(conn: Connection, caps: capped.Caps, at_ms: int, bulk_limit: int | None = None):  # type: ignore[no-untyped-def]
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return capped.claim_in(conn, caps, 50, LEASE, now=at, bulk_limit=bulk_limit)


def bulk_type(conn: Connection, event_id: str) -> None:
    conn.execute(
        sa.update(event_configs).where(event_configs.c.event_id == event_id).values(priority="bulk")
    )


def used(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.text("SELECT scope, used FROM rate_windows"))
    return {r.scope.removeprefix("channel:mail:"): int(r.used) for r in rows}


def _soon_ms() -> int:
    """Half a second into a second a little ahead, for events due now."""
    now_ms = int(utcnow().timestamp() * 1000) + 5000
    return now_ms - now_ms % SECOND_MS + 500


async def test_bulk_spends_at_most_its_share_of_the_day(db: Database) -> None:
    """A per-day quota spent by bulk keeps the reserve: transactional sends go on to the
    full cap, and only then wait."""
    await db.write(hook, "EVTmix")
    await db.write(bulk_type, "EVTmix")
    await db.write(cap, "mail", {"per_day": 10, "bulk_share": 50})
    caps = await db.read(capped.load_caps)
    bulk = [new_event("EVTmix", priority=PRIORITY_BULK) for _ in range(8)]
    await db.write(write_cycle, CycleRequest(new=bulk, caps=caps))
    at = _soon_ms()
    day_end = at - at % DAY_MS + DAY_MS
    first = await db.write(claim, caps, at)
    assert len(first.claimed.events) == 5 and all(e.bulk for e in first.claimed.events)
    assert first.held_until_ms == day_end  # bulk's share is spent until the day ends
    urgent = [new_event("EVTmix", priority=0) for _ in range(6)]
    await db.write(write_cycle, CycleRequest(new=urgent, caps=caps))
    second = await db.write(claim, caps, at + 10)
    assert {e.pkey for e in second.claimed.events} == {e.pkey for e in urgent[:5]}
    assert second.held_until_ms == day_end
    assert (await db.write(claim, caps, at + 20)).claimed.events == []
    assert await db.read(used) == {"day": 10, "day:bulk": 5}
    for held in [*bulk[5:], urgent[5]]:
        row = await db.read(event_row, held.pkey)
        assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)


async def test_bulk_spends_at_most_its_share_of_each_second(db: Database) -> None:
    await db.write(hook, "EVTmix")
    await db.write(bulk_type, "EVTmix")
    await db.write(cap, "mail", {"per_second": 4, "per_day": 100, "bulk_share": 50})
    caps = await db.read(capped.load_caps)
    bulk = [new_event("EVTmix", priority=PRIORITY_BULK) for _ in range(6)]
    await db.write(write_cycle, CycleRequest(new=bulk, caps=caps))
    at = _soon_ms()
    first = await db.write(claim, caps, at)
    assert [e.pkey for e in first.claimed.events] == [e.pkey for e in bulk[:2]]
    assert first.held_until_ms == at - 500 + SECOND_MS  # bulk waits for the next second...
    urgent = [new_event("EVTmix", priority=0) for _ in range(3)]
    await db.write(write_cycle, CycleRequest(new=urgent, caps=caps))
    # ... while transactional events triggered later in this second take the reserve.
    second = await db.write(claim, caps, at + 100)
    assert [e.pkey for e in second.claimed.events] == [e.pkey for e in urgent[:2]]
    assert (await db.write(claim, caps, at + 200)).claimed.events == []
    # The next second: transactional first, then bulk within its share and the lease
    # book's bound; bulk tokens not spent are given back.
    third = await db.write(claim, caps, at + SECOND_MS, 1)
    assert {e.pkey for e in third.claimed.events} == {urgent[2].pkey, bulk[2].pkey}
    fourth = await db.write(claim, caps, at + SECOND_MS + 10)
    assert [e.pkey for e in fourth.claimed.events] == [bulk[3].pkey]
    assert await db.read(used) == {"second": 3, "second:bulk": 2, "day": 7, "day:bulk": 4}


async def test_a_channel_without_bulk_types_takes_no_bulk_tokens(db: Database) -> None:
    await db.write(hook, "EVTurgent")
    await db.write(cap, "mail", {"per_day": 10, "bulk_share": 50})
    caps = await db.read(capped.load_caps)
    assert caps.channels[0].bulk_windows == ()
    await db.write(bulk_type, "EVTurgent")
    caps = await db.read(capped.load_caps)
    assert [w.scope for w in caps.channels[0].bulk_windows] == ["channel:mail:day:bulk"]


def channel(conn: Connection, name: str, rate_limit: dict[str, int] | None, **types: str) -> None:
    """A channel configuration `name` (capped when `rate_limit`), and event configurations
    through it: `types` maps each eventId to its lane."""
    now = utcnow()
    conn.execute(
        sa.insert(channel_configs).values(
            name=name,
            channel="email",
            settings={"rate_limit": rate_limit} if rate_limit else {},
            secrets={},
            message_export=False,
            revision=1,
            created_at=now,
            updated_at=now,
        )
    )
    for event_id, lane in types.items():
        conn.execute(
            sa.insert(event_configs).values(
                event_id=event_id,
                label=event_id,
                channel="email",
                channel_config=name,
                target="event",
                fields=[],
                template="default",
                state="published",
                priority=lane,
                revision=1,
                created_at=now,
                updated_at=now,
            )
        )


def claim_of(  # type: ignore[no-untyped-def]
    conn: Connection, caps: capped.Caps, at_ms: int, limit: int, bulk_limit: int | None = None
):
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return capped.claim_in(conn, caps, limit, LEASE, now=at, bulk_limit=bulk_limit)


def lanes(claimed: capped.CappedClaim) -> list[tuple[str, bool]]:
    """(eventId, bulk?) of each event a claim leased, sorted."""
    return sorted((e.event_id, e.bulk) for e in claimed.claimed.events)


async def test_transactional_events_of_an_uncapped_type_go_before_capped_bulk(
    db: Database,
) -> None:
    """A cap on a bulk type's channel does not put its backlog ahead of another type's
    transactional events: the claim takes those first, and gives the tokens back."""
    await db.write(channel, "news", {"per_second": 1000, "per_day": 100_000}, EVTnews="bulk")
    caps = await db.read(capped.load_caps)
    assert caps.held == {"EVTnews"}
    # The bulk backlog is older: only the lane puts the transactional events first.
    bulk = [new_event("EVTnews", priority=PRIORITY_BULK, due_in=-10) for _ in range(10)]
    urgent = [new_event("EVTreset") for _ in range(10)]
    await db.write(write_cycle, CycleRequest(new=[*bulk, *urgent], caps=caps))
    at = _soon_ms()
    for bound in (5, None):  # with the lease book's bulk bound, and without one
        got = await db.write(claim_of, caps, at, 5, bound)
        assert lanes(got) == [("EVTreset", False)] * 5
        assert got.held_until_ms is None
    # Every token the claims took for "news" went back unspent.
    assert set((await db.read(used)).values()) == {0}
    # What is left of the limit goes to the bulk lane, capped type included.
    got = await db.write(claim_of, caps, at + 10, 6, 6)
    assert lanes(got) == [("EVTnews", True)] * 6


async def test_transactional_events_of_a_capped_type_go_before_any_bulk(db: Database) -> None:
    """Transactional events of a capped type, within its tokens, before bulk events of an
    uncapped type and of another capped channel (whatever the channels' order)."""
    await db.write(channel, "a-bulk", {"per_second": 1000}, EVTdigest="bulk")
    await db.write(channel, "mail", {"per_second": 3}, EVTreset="transactional")
    caps = await db.read(capped.load_caps)
    assert [c.name for c in caps.channels] == ["a-bulk", "mail"]
    digests = [new_event("EVTdigest", priority=PRIORITY_BULK, due_in=-10) for _ in range(4)]
    news = [new_event("EVTnews", priority=PRIORITY_BULK, due_in=-10) for _ in range(4)]
    urgent = [new_event("EVTreset") for _ in range(5)]
    await db.write(write_cycle, CycleRequest(new=[*digests, *news, *urgent], caps=caps))
    at = _soon_ms()
    got = await db.write(claim_of, caps, at, 4, 4)
    # Three tokens a second for "mail": its three transactional events first, then one bulk
    # event (of the capped channel "a-bulk", whose tokens are taken already).
    assert lanes(got) == [("EVTdigest", True)] + [("EVTreset", False)] * 3
    assert got.held_until_ms == at - 500 + SECOND_MS  # "mail" holds two until the second ends
    got = await db.write(claim_of, caps, at + 10, 10, 10)
    assert lanes(got) == [("EVTdigest", True)] * 3 + [("EVTnews", True)] * 4


async def test_tokens_across_the_two_lanes(db: Database) -> None:
    """A capped channel's transactional and bulk events share its tokens, bulk ones within
    their share, in a claim whose transactional lane goes first for every type; the tokens
    not spent are given back, and the claim is a few statements whatever the queue holds."""
    await db.write(
        channel, "mail", {"per_second": 4, "per_day": 100, "bulk_share": 50}, EVTmix="bulk"
    )
    caps = await db.read(capped.load_caps)
    mixed = [
        new_event("EVTmix", due_in=-5),
        *(new_event("EVTmix", priority=PRIORITY_BULK, due_in=-10) for _ in range(5)),
    ]
    free = [new_event("EVTfree", due_in=-1) for _ in range(3)]
    free += [new_event("EVTfree", priority=PRIORITY_BULK, due_in=-20) for _ in range(5)]
    await db.write(write_cycle, CycleRequest(new=[*mixed, *free], caps=caps))
    at = _soon_ms()
    # Every transactional event first; then one bulk event, of the capped type (its tokens are
    # already taken). Of the 4 tokens "mail" took, it spent 2; of its 2 bulk ones, 1.
    first = await db.write(claim_of, caps, at, 5)
    assert lanes(first) == [("EVTfree", False)] * 3 + [("EVTmix", False), ("EVTmix", True)]
    assert first.held_until_ms is None  # the claim's limit, not the cap, left events due
    assert await db.read(used) == {"second": 2, "second:bulk": 1, "day": 2, "day:bulk": 1}

    # The same second: 2 tokens left, 1 of them bulk; the uncapped backlog goes on.
    def counted(conn: Connection) -> tuple[capped.CappedClaim, int]:
        seen: list[str] = []

        def record(*args: Any) -> None:
            seen.append(args[2])

        sa_event.listen(conn, "before_cursor_execute", record)
        try:
            return claim_of(conn, caps, at + 10, 50), len(seen)
        finally:
            sa_event.remove(conn, "before_cursor_execute", record)

    second, statements = await db.write(counted)
    assert lanes(second) == [("EVTfree", True)] * 5 + [("EVTmix", True)]
    assert second.held_until_ms == at - 500 + SECOND_MS  # the bulk share of this second is spent
    assert await db.read(used) == {"second": 3, "second:bulk": 2, "day": 3, "day:bulk": 2}
    # Two takes of tokens, two lanes of two statements, a give-back, SQLite's read-back.
    assert statements <= 8
    # The next second: the rest of the bulk backlog within the share.
    third = await db.write(claim_of, caps, at + SECOND_MS, 50)
    assert lanes(third) == [("EVTmix", True)] * 2
    assert await db.read(used) == {"second": 2, "second:bulk": 2, "day": 5, "day:bulk": 4}


async def test_events_leased_past_their_expiration_spend_no_tokens(db: Database) -> None:
    """Events that expired in the queue are leased (they end tooOld, unsent) but their tokens
    go back: a backlog that expired does not use up the day's cap of the events since."""
    await db.write(hook, "EVTmix")
    await db.write(bulk_type, "EVTmix")
    await db.write(cap, "mail", {"per_day": 10})
    caps = await db.read(capped.load_caps)
    stale = [new_event("EVTmix", priority=PRIORITY_BULK, expires_in=1) for _ in range(6)]
    stale += [new_event("EVTmix", priority=0, expires_in=1) for _ in range(2)]
    await db.write(write_cycle, CycleRequest(new=stale, caps=caps))
    at = _soon_ms()  # five seconds ahead: past their expiration
    first = await db.write(claim, caps, at)
    assert {e.pkey for e in first.claimed.events} == {e.pkey for e in stale}
    assert await db.read(used) == {"day": 0, "day:bulk": 0}
    fresh = [new_event("EVTmix", priority=PRIORITY_BULK) for _ in range(12)]
    await db.write(write_cycle, CycleRequest(new=fresh, caps=caps))
    second = await db.write(claim, caps, at + 10)
    assert len(second.claimed.events) == 9  # the bulk share of the whole cap (90 %)
    assert await db.read(used) == {"day": 9, "day:bulk": 9}


def outcomes_of(
    claimed: capped.CappedClaim, *, give_back: bool = True, status: str = "pending"
) -> list[Outcome]:
    """Each claimed event back to the queue: handed back unsent (`give_back`), or retried."""
    return [
        Outcome(
            e.id, e.lease_token, EventStatus(status), "handed back", utcnow(), give_back=give_back
        )
        for e in claimed.claimed.events
    ]


async def test_sends_handed_back_unsent_give_their_tokens_back(db: Database) -> None:
    """A claim's events handed back unsent (a stop, a pause at send time) return their
    tokens with their outcome, to every window their claim took them from: claimed again the
    same day, they spend the day's quota once, not twice."""
    await db.write(
        channel,
        "mail",
        {"per_second": 10, "per_day": 4, "bulk_share": 50},
        EVTmix="bulk",
    )
    caps = await db.read(capped.load_caps)
    queued = [new_event("EVTmix", priority=0) for _ in range(2)]
    queued += [new_event("EVTmix", priority=PRIORITY_BULK) for _ in range(2)]
    await db.write(write_cycle, CycleRequest(new=queued, caps=caps))
    at = _soon_ms()
    first = await db.write(claim, caps, at)
    assert len(first.claimed.events) == 4
    assert await db.read(used) == {"second": 4, "second:bulk": 2, "day": 4, "day:bulk": 2}
    # Handed back (two to `pending`, two `paused`): every token goes back, in one cycle.
    back = outcomes_of(first)
    back[1:3] = [replace(o, status=EventStatus.PAUSED) for o in back[1:3]]
    await db.write(write_cycle, CycleRequest(outcomes=back, caps=caps))
    assert await db.read(used) == {"second": 0, "second:bulk": 0, "day": 0, "day:bulk": 0}
    await db.write(lambda c: c.execute(sa.text("UPDATE events SET status = 'pending'")))
    # The same day: all four go again, within the day's quota.
    second = await db.write(claim, caps, at + SECOND_MS)
    assert {e.pkey for e in second.claimed.events} == {e.pkey for e in queued}
    assert await db.read(used) == {"second": 4, "second:bulk": 2, "day": 4, "day:bulk": 2}
    # A second recording of the first claim's outcomes (stale: another lease holds the events
    # now) gives nothing back; neither does a retry after an attempt a provider saw.
    await db.write(write_cycle, CycleRequest(outcomes=outcomes_of(first), caps=caps))
    await db.write(
        write_cycle, CycleRequest(outcomes=outcomes_of(second, give_back=False), caps=caps)
    )
    assert await db.read(used) == {"second": 4, "second:bulk": 2, "day": 4, "day:bulk": 2}


async def test_a_window_past_and_an_expired_event_get_nothing_back(db: Database) -> None:
    """The per-second window of a claim long past gets nothing back (a later second's counter
    is not the one the claim spent from), the per-day one does; and an event leased past its
    expiration, whose tokens its claim gave back already, gives nothing back twice."""
    await db.write(channel, "mail", {"per_second": 5, "per_day": 10}, EVTcap="transactional")
    caps = await db.read(capped.load_caps)
    stale = new_event("EVTcap", expires_in=1)
    fresh = new_event("EVTcap")
    await db.write(write_cycle, CycleRequest(new=[stale, fresh], caps=caps))
    at = _soon_ms()  # past the stale one's expiration
    first = await db.write(claim, caps, at)
    assert len(first.claimed.events) == 2
    assert await db.read(used) == {"second": 1, "day": 1}
    later = new_event("EVTcap", due_in=-1)
    await db.write(write_cycle, CycleRequest(new=[later], caps=caps))
    # The next second: its window's counter starts afresh.
    assert [e.pkey for e in (await db.write(claim, caps, at + SECOND_MS)).claimed.events] == [
        later.pkey
    ]
    assert await db.read(used) == {"second": 1, "day": 2}
    await db.write(write_cycle, CycleRequest(outcomes=outcomes_of(first), caps=caps))
    assert await db.read(used) == {"second": 1, "day": 1}


async def test_final_outcomes_no_provider_saw_give_their_tokens_back(db: Database) -> None:
    """A claim's events that end for good without a provider seeing them (`ignored`,
    `routingFailed`, `targetingFailed`, `tooOld` at send time: the dispatcher gives their
    tokens back, `Outcome.provider_saw`) return them with their outcomes, in one statement
    for the whole cycle; a sent one keeps its token. The next claim takes the tokens freed."""
    await db.write(channel, "mail", {"per_second": 10, "per_day": 5}, EVTcap="transactional")
    caps = await db.read(capped.load_caps)
    queued = [new_event("EVTcap") for _ in range(5)]
    await db.write(write_cycle, CycleRequest(new=queued, caps=caps))
    at = _soon_ms()
    first = await db.write(claim, caps, at)
    assert len(first.claimed.events) == 5
    assert await db.read(used) == {"second": 5, "day": 5}
    statuses = ["ignored", "routingFailed", "targetingFailed", "tooOld"]
    ended = [
        Outcome(e.id, e.lease_token, EventStatus(s), "not sent", give_back=True)
        for e, s in zip(first.claimed.events, statuses, strict=False)
    ]
    last = first.claimed.events[-1]
    ended.append(Outcome(last.id, last.lease_token, EventStatus.PROCESSED, sent_at=utcnow()))
    assert [o.provider_saw for o in ended] == [False] * 4 + [True]

    def counted(conn: Connection) -> int:
        seen: list[str] = []

        def record(*args: Any) -> None:
            if "rate_windows" in args[2]:
                seen.append(args[2])

        sa_event.listen(conn, "before_cursor_execute", record)
        try:
            write_cycle(conn, CycleRequest(outcomes=ended, caps=caps))
        finally:
            sa_event.remove(conn, "before_cursor_execute", record)
        return len(seen)

    assert await db.write(counted) == 1  # one give-back for the cycle, whatever its size
    assert await db.read(used) == {"second": 1, "day": 1}
    later = [new_event("EVTcap") for _ in range(6)]
    await db.write(write_cycle, CycleRequest(new=later, caps=caps))
    second = await db.write(claim, caps, at + 10)  # the same second, the same day
    assert len(second.claimed.events) == 4  # the four tokens given back, no more
    assert await db.read(used) == {"second": 5, "day": 5}


async def test_a_claim_alone_that_finds_nothing_commits_nothing(db: Database) -> None:
    """Its tokens taken and all given back: rolled back, not committed (a commit wakes every
    other process's idle worker, whose claim's commit wakes this one...). A claim that finds
    events, or a cycle with anything else to write, commits."""
    await db.write(hook, "EVTcap")
    await db.write(cap, "mail", {"per_second": 5, "per_day": 100})
    caps = await db.read(capped.load_caps)
    alone = CycleRequest(free=10, claim_limit=10, lease=LEASE, caps=caps)

    def cycle(conn: Connection, request: CycleRequest) -> tuple[int, list[str]]:
        ended: list[str] = []  # by the time the write returns: how its transaction ended
        sa_event.listen(conn, "commit", lambda _: ended.append("commit"))
        sa_event.listen(conn, "rollback", lambda _: ended.append("rollback"))
        return len(write_cycle(conn, request).claimed), ended

    assert await db.write(cycle, alone) == (0, ["rollback"])
    assert await db.read(used) == {}  # not even the windows' rows
    event = new_event("EVTcap")
    assert await db.write(cycle, CycleRequest(new=[event], caps=caps)) == (0, ["commit"])
    assert await db.write(cycle, alone) == (1, ["commit"])
    assert await db.read(used) == {"second": 1, "day": 1}
    assert (await db.read(event_row, event.pkey)).status == EventStatus.PROCESSING
