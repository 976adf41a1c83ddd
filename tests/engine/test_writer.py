"""The writer with a lease book on a real database, no dispatcher: what a cycle claims or leases
is what the book has room for, handed to the book's consumer; what the book learns back; a batch
trigger is one submission, written all or nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from helpers import nested_lists, queued_event
from txmsg.core.queue import (
    PRIORITY_BULK,
    ClaimedEvent,
    EnqueueResult,
    NewBatch,
    NewEvent,
    Outcome,
)
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.engine import writer as writer_module
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import CALM_BULK_IN_FLIGHT, Writer
from txmsg.store.batcher import CALM_BATCH
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue import claims, leases
from txmsg.store.queue.cycle import CycleRequest, CycleResult, write_cycle
from txmsg.store.queue.enqueue import enqueue_in
from txmsg.store.tables import events

LEASE = timedelta(seconds=30)


def _consuming_writer(
    db: Database, max_in_flight: int
) -> tuple[Writer, LeaseBook, list[ClaimedEvent]]:
    """A writer (not started) whose lease book hands what it leases to `received`."""
    book = LeaseBook(max_in_flight=max_in_flight, lease=LEASE)
    received: list[ClaimedEvent] = []
    book.consume(received.extend)
    return Writer(db, book), book, received


def _holding_claims(writer: Writer, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The writer's funnel cycles that claim wait, before their transaction, until the event
    returned is set (express cycles never claim: they go on)."""
    write = writer._write
    held = asyncio.Event()

    async def slow_claims(request: CycleRequest) -> CycleResult:
        if request.claim_limit:
            await held.wait()
        return await write(request)

    monkeypatch.setattr(writer, "_write", slow_claims)
    return held


async def test_a_cycle_leases_what_the_book_has_room_for_and_learns_the_queue_is_empty(
    db: Database,
) -> None:
    writer, book, received = _consuming_writer(db, 2)
    writer.start()
    try:
        queued = [queued_event("EVTw") for _ in range(3)]
        for item in queued:  # one cycle each: the first two are leased as they are written
            await writer.enqueue(item)
        assert [e.pkey for e in received] == [q.pkey for q in queued[:2]]
        assert book.in_flight == 2 and book.free_slots() == 0
        assert (await db.read(get_event, "EVTw", queued[2].pkey)).status == "pending"
        assert book.wants_claim(1)  # the third waits in the queue: the book was told

        # An outcome frees its slot in the cycle that records it: that cycle claims the third.
        first = received[0]
        await writer.record(Outcome(first.id, first.lease_token, EventStatus.PROCESSED))
        book.release([first])
        assert [e.pkey for e in received] == [q.pkey for q in queued]

        # A claim that comes back short: no due event is left, the book stops asking.
        book.release(received[1:])
        await writer.tick()
        assert book.free_slots() == 2
        assert not book.may_have_due(book.free_slots())
        book.wake()
        assert book.may_have_due(book.free_slots())
    finally:
        await writer.stop()


async def test_without_a_consumer_a_cycle_leases_nothing(db: Database) -> None:
    """API only: the book has no consumer, so the writer leases and claims nothing."""
    writer = Writer(db, LeaseBook(max_in_flight=8, lease=LEASE))
    writer.start()
    try:
        item = queued_event("EVTw")
        result = await writer.enqueue(item)
        await writer.tick()
    finally:
        await writer.stop()
    assert result.kind == "created"
    row = await db.read(get_event, "EVTw", item.pkey)
    assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)


async def test_a_batch_with_a_bad_row_fails_whole_and_alone(db: Database) -> None:
    writer = Writer(db, LeaseBook(max_in_flight=64, lease=timedelta(seconds=60)))
    writer.start()
    try:
        now = utcnow()
        good = NewBatch(tuple(queued_event("EVTx", now=now) for _ in range(3)), {"n": 1})
        # Unserialisable at the store (the API refuses it earlier): its whole batch fails.
        bad = NewBatch(
            (
                queued_event("EVTx", now=now),
                queued_event("EVTx", now=now, ctx={"x": nested_lists(300)}),
            ),
            {"n": 2},
        )
        single = queued_event("EVTx", now=now)
        results = await asyncio.gather(
            writer.enqueue_batch(good),
            writer.enqueue_batch(bad),
            writer.enqueue(single),
            return_exceptions=True,
        )
        assert results[0] == EnqueueResult("created", {"n": 1})
        assert isinstance(results[1], Exception)
        assert isinstance(results[2], EnqueueResult) and results[2].kind == "created"
        claimed = (await db.write(claims.claim_in, 10, timedelta(seconds=30))).events
        assert {c.pkey for c in claimed} == {e.pkey for e in (*good.events, single)}
    finally:
        await writer.stop()


async def test_api_only_cycles_may_overlap_and_each_answer_is_committed(db: Database) -> None:
    """No consumer: cycles are independent (on PostgreSQL several run at once); every trigger
    answered `created` is in the database, pending, leased to nobody."""
    book = LeaseBook(max_in_flight=8, lease=LEASE)
    assert book.leases_nothing()
    writer = Writer(db, book)
    writer.start()
    try:
        items = [queued_event("EVTw") for _ in range(40)]
        pending = []
        for n, item in enumerate(items):  # several cycles, the later ones while others run
            pending.append(asyncio.ensure_future(writer.enqueue(item)))
            if n % 7 == 6:
                await asyncio.sleep(0.001)
        results = await asyncio.gather(*pending)
    finally:
        await writer.stop()
    assert [r.kind for r in results] == ["created"] * 40
    rows = [await db.read(get_event, "EVTw", i.pkey) for i in items]
    assert [(r.status, r.lease_token) for r in rows] == [("pending", None)] * 40
    book.consume(lambda _events: None)
    assert not book.leases_nothing()  # with a dispatcher, cycles run one at a time


class _Watched:
    """The database, telling when a write cycle that records outcomes has begun."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.recording = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def write_bounded(self, fn: Any, request: Any) -> Any:  # the write funnel's
        if request.outcomes:
            self.recording.set()
        return await self._db.write_bounded(fn, request)


async def test_the_slots_of_recorded_outcomes_are_free_for_the_next_cycle(db: Database) -> None:
    """A trigger written in the cycle right after one that recorded outcomes is leased at
    insert: the sends of those outcomes release their slots (in the loop turn after the
    answers) before the next cycle counts its room, not after."""
    book = LeaseBook(max_in_flight=2, lease=LEASE)
    received: list[ClaimedEvent] = []
    book.consume(received.extend)
    watched = _Watched(db)
    writer = Writer(cast(Database, watched), book)
    writer.start()
    try:
        for _ in range(2):
            await writer.enqueue(queued_event("EVTw"))
        assert book.free_slots() == 0

        async def send(event: ClaimedEvent) -> None:  # as the dispatcher's task does
            await writer.record(Outcome(event.id, event.lease_token, EventStatus.PROCESSED))
            book.release([event])

        sends = [asyncio.create_task(send(e)) for e in list(received)]
        await watched.recording.wait()  # the outcomes' cycle is under way
        urgent = queued_event("EVTw")
        await writer.enqueue(urgent)  # the next cycle, begun as that one's answers go out
        await asyncio.gather(*sends)
        assert received[-1].pkey == urgent.pkey  # leased at insert: no claim, no poll
        assert book.in_flight == 1
    finally:
        await writer.stop()


async def test_a_transactional_trigger_goes_first_and_alone_then_bulk_work_goes_short(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While bulk events are in flight, a transactional trigger never shares a write cycle with
    bulk work waiting beside it, and for a while after one, a cycle claims at most CALM_BATCH
    bulk events (the next transactional trigger then waits for a short cycle, not a long one)."""
    requests: list[CycleRequest] = []

    def spy(conn: Connection, request: CycleRequest) -> CycleResult:
        requests.append(request)
        return write_cycle(conn, request)

    def queue_bulk(count: int) -> list[NewEvent]:
        return [queued_event("EVTbulk", priority=PRIORITY_BULK) for _ in range(count)]

    monkeypatch.setattr(writer_module, "write_cycle", spy)
    writer, book, received = _consuming_writer(db, 64)
    writer.start()
    try:
        await db.write(enqueue_in, queue_bulk(4))  # queued, no lease yet
        book.wake()
        await writer.tick()  # claimed: bulk work under way
        assert len(received) == 4 and all(e.bulk for e in received)

        bulk = queue_bulk(2)
        urgent = queued_event("EVTtx")
        await db.write(enqueue_in, queue_bulk(CALM_BATCH * 3))
        first = len(requests)
        await asyncio.gather(*(writer.enqueue(e) for e in (*bulk, urgent)))
        # Two cycles (on PostgreSQL side by side: the transactional one is an express cycle).
        cycles = {tuple(sorted(e.pkey for e in r.new)): r for r in requests[first:]}
        assert set(cycles) == {(urgent.pkey,), tuple(sorted(e.pkey for e in bulk))}
        assert cycles[(urgent.pkey,)].bulk_free == 0  # its cycle claimed no bulk events
        [sent] = [e for e in received if e.pkey == urgent.pkey]

        book.release([sent])  # the gate opens: bulk events may be claimed again
        before = len(received)
        book.wake()
        await writer.tick()
    finally:
        await writer.stop()
    # The book had room for all 50 waiting, but the cycle claimed CALM_BATCH of them (on
    # SQLite, up to CALM_BULK_IN_FLIGHT in flight: 4 were).
    expected = CALM_BULK_IN_FLIGHT - 4 if db.is_sqlite else CALM_BATCH
    assert requests[-1].bulk_free == expected
    assert len(received) - before == expected


async def test_while_calm_a_transactional_trigger_waits_for_no_funnel_cycle_on_postgresql(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: while bulk work is under way, transactional triggers go in write cycles of
    their own beside the funnel's; SQLite has one writer, so they wait for the cycle under way."""
    writer, book, received = _consuming_writer(db, 64)
    held = _holding_claims(writer, monkeypatch)
    writer.start()
    try:
        bulk = [queued_event("EVTbulk", priority=PRIORITY_BULK) for _ in range(CALM_BATCH)]
        await db.write(enqueue_in, bulk)
        book.wake()
        held.set()
        await writer.tick()  # bulk work under way
        assert book.bulk_busy
        held.clear()
        book.wake()
        claiming = asyncio.create_task(writer.tick())  # a funnel cycle, held
        await asyncio.sleep(0.05)
        urgent = queued_event("EVTtx")
        accepted = asyncio.create_task(writer.enqueue(urgent))
        done, _ = await asyncio.wait({accepted}, timeout=2)
        assert bool(done) != db.is_sqlite
        assert not claiming.done()
        held.set()
        await asyncio.wait_for(asyncio.gather(claiming, accepted), 5)
    finally:
        held.set()
        await writer.stop()
    assert urgent.pkey in [e.pkey for e in received]  # leased at insert in either case


async def test_an_express_cycle_beside_a_claiming_one_keeps_the_book_within_its_bound(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: transactional triggers in an express cycle while a funnel cycle claims: the
    slots the funnel cycle may fill are reserved, so together they never put more than
    max_in_flight events in flight; the triggers that find no room wait queued."""
    writer, book, received = _consuming_writer(db, 10)
    held = _holding_claims(writer, monkeypatch)
    held.set()
    writer.start()
    try:
        await db.write(enqueue_in, [queued_event("EVTbulk", priority=PRIORITY_BULK)])
        book.wake()
        await writer.tick()  # bulk work under way: 1 in flight, 9 free
        assert book.in_flight == 1 and book.bulk_busy
        await db.write(enqueue_in, [queued_event("EVTtx") for _ in range(12)])
        held.clear()
        book.wake()
        claiming = asyncio.create_task(writer.tick())  # may fill the 9 free slots; held
        await asyncio.sleep(0.05)
        urgent = [queued_event("EVTtx") for _ in range(9)]
        accepted = asyncio.gather(*(writer.enqueue(e) for e in urgent))
        if not db.is_sqlite:  # express, beside the held cycle: answered while it is held
            await asyncio.wait_for(asyncio.shield(accepted), 2)
            assert not claiming.done()
        held.set()
        await asyncio.wait_for(asyncio.gather(claiming, accepted), 5)
        assert book.in_flight <= 10
    finally:
        held.set()
        await writer.stop()
    assert len(received) == 10


async def test_a_lease_another_worker_took_meanwhile_is_not_renewed_and_stays_lost(
    db: Database,
) -> None:
    """This process froze past its leases (SIGSTOP, a paused VM) and resumes: its next cycle
    renews what its book holds. Another worker claimed one of the events meanwhile: the
    database keeps that worker's lease, and the book must see its own as lost (its send would
    go twice). A lapsed lease that no one took is renewed: still this process's."""
    start = utcnow()
    clock = [start]
    book = LeaseBook(max_in_flight=8, lease=LEASE, clock=lambda: clock[0])
    received: list[ClaimedEvent] = []
    book.consume(received.extend)
    writer = Writer(db, book)
    writer.start()
    try:
        await writer.enqueue(queued_event("EVTr", now=start))
        [taken] = received
        # Its lease lapses; the housekeeping gives it back and another worker claims it.
        await db.write(leases.release_expired_in, start + LEASE + timedelta(seconds=1))
        [theirs] = (await db.write(claims.claim_in, 1, LEASE)).events
        assert theirs.id == taken.id and theirs.lease_token != taken.lease_token
        await writer.enqueue(queued_event("EVTr", now=start))  # leased here, taken by none
        kept = received[1]
        clock[0] = start + LEASE + timedelta(seconds=1)  # resumed: both lapsed by its clock
        assert book.lost(taken) and book.lost(kept)
        await writer.tick()  # a cycle that renews them
        assert book.lost(taken)
        assert not book.lost(kept)
        taken_row = await db.read(get_event, "EVTr", taken.pkey)
        assert taken_row.lease_token == theirs.lease_token
        kept_row = await db.read(get_event, "EVTr", kept.pkey)
        assert kept_row.lease_until == clock[0] + LEASE
    finally:
        await writer.stop()


async def test_a_claim_is_timed_after_the_release_that_let_it_claim(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's sweep gives back a lapsed lease while this process's cycle waits to
    run: the claim's `processing` is timed in its transaction, so never before that `pending`
    (receivers order the webhook calls by their time)."""
    writer, _, received = _consuming_writer(db, 4)
    await db.write(enqueue_in, [queued_event("EVTt")])
    await db.write(claims.claim_in, 1, timedelta(seconds=-1))  # a lease already lapsed
    held = _holding_claims(writer, monkeypatch)
    writer.start()
    try:
        cycle = asyncio.ensure_future(writer.tick())  # its request made, it waits
        await asyncio.sleep(0.05)
        await db.write(leases.release_expired_in)  # the sweep: `pending` again, now
        [event] = await db.read(lambda conn: list(conn.execute(sa.select(events))))
        released_at = event.updated_at
        held.set()
        await cycle
        assert [e.id for e in received] == [event.id]
        [event] = await db.read(lambda conn: list(conn.execute(sa.select(events))))
        assert event.status == "processing"
        assert event.updated_at >= released_at
    finally:
        await writer.stop()
