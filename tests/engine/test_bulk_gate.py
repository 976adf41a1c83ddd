"""The bulk gate on its own, and through the lease book: bulk work pauses while a transactional
event is on its way (but for a trickle), and bulk claims go on when it opens."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from helpers import leased_event
from txmsg.core.queue import ClaimedEvent
from txmsg.engine.bulk_gate import BulkGate
from txmsg.engine.leases import LeaseBook


def event(event_id: int, *, bulk: bool = False) -> ClaimedEvent:
    return leased_event(event_id, bulk=bulk)


async def test_bulk_steps_pass_at_once_with_no_transactional_event() -> None:
    gate = BulkGate(trickle=10)
    assert not gate.closed
    await asyncio.wait_for(gate.turn(), 0.1)


async def test_bulk_steps_wait_until_the_last_transactional_event_is_done() -> None:
    opened: list[bool] = []
    gate = BulkGate(trickle=10, on_open=lambda: opened.append(True))
    gate.hold(2)
    waiting = [asyncio.create_task(gate.turn()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert gate.closed and not any(t.done() for t in waiting)
    gate.let_go()
    await asyncio.sleep(0.01)
    assert gate.closed and not any(t.done() for t in waiting) and not opened
    gate.let_go()
    await asyncio.wait_for(asyncio.gather(*waiting), 0.5)
    assert not gate.closed and opened == [True]
    with pytest.raises(RuntimeError):
        gate.let_go()  # more than were held: a bug in the caller, not silently absorbed


async def test_a_cancelled_bulk_step_leaves_the_others_waiting() -> None:
    gate = BulkGate(trickle=10)
    gate.hold()
    first, second = asyncio.create_task(gate.turn()), asyncio.create_task(gate.turn())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    assert first.cancelled() and not second.done()
    gate.let_go()
    await asyncio.wait_for(second, 0.5)


async def test_a_steady_transactional_stream_slows_bulk_work_to_a_trickle() -> None:
    gate = BulkGate(trickle=0.02)
    gate.hold()  # never let go
    waiting = [asyncio.create_task(gate.turn()) for _ in range(4)]
    waiting[1].cancel()  # skipped: the next one takes its turn
    loop = asyncio.get_running_loop()
    started = loop.time()
    done: list[float] = []
    for step in (waiting[0], waiting[2], waiting[3]):
        await asyncio.wait_for(step, 1)
        done.append(loop.time() - started)
    assert waiting[1].cancelled()
    # One step per trickle, in order of arrival: never all at once, never none.
    assert done[0] >= 0.015 and done[1] - done[0] >= 0.015 and done[2] - done[1] >= 0.015
    assert done[2] < 0.5
    gate.let_go()


async def test_the_lease_book_pauses_bulk_claims_while_a_transactional_event_is_sent() -> None:
    book = LeaseBook(max_in_flight=8, lease=timedelta(minutes=1), bulk_trickle=10)
    book.consume(lambda events: None)
    book.hand_over([event(i, bulk=True) for i in range(4)])
    assert book.bulk_room(book.free_slots()) == 2 and not book.gate.closed
    book.hand_over([event(10)])
    # Bulk events in flight wait at the closed gate: no more are claimed meanwhile.
    assert book.gate.closed and book.bulk_room(book.free_slots()) == 0
    # A claim with no bulk room while more bulk events wait: claim again once the gate opens.
    book.claimed(0, book.free_slots(), since=book.wakes, bulk=0, bulk_limit=0)
    book.release([event(0, bulk=True), event(1, bulk=True)])
    book.clear_signal()
    book.release([event(10)])  # sent: the gate opens, and the claimer is woken
    assert not book.gate.closed and book.bulk_room(book.free_slots()) == 4
    assert book.wants_claim(book.free_slots())
    await asyncio.wait_for(book.wait(5), 0.5)


async def test_bulk_claims_go_on_under_a_closed_gate_when_no_bulk_event_is_left() -> None:
    """The trickle needs bulk events to let through: a steady transactional stream must not
    stop bulk claims for good."""
    book = LeaseBook(max_in_flight=8, lease=timedelta(minutes=1), bulk_trickle=10)
    book.consume(lambda events: None)
    book.hand_over([event(10)])
    assert book.gate.closed and book.bulk_room(book.free_slots()) == 6


async def test_a_transactional_event_stuck_for_longer_than_the_patience_holds_bulk_no_more() -> (
    None
):
    """A send stuck on a hung server (until its timeout) would otherwise hold bulk work to the
    trickle all that time; the next transactional event closes the gate again."""
    opened: list[bool] = []
    gate = BulkGate(trickle=10, on_open=lambda: opened.append(True), patience=0.1)
    gate.hold()
    waiting = [asyncio.create_task(gate.turn()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert gate.closed and not any(t.done() for t in waiting)
    await asyncio.wait_for(asyncio.gather(*waiting), 0.5)  # well before the 10 s trickle
    assert not gate.closed and opened == [True]
    await asyncio.wait_for(gate.turn(), 0.1)  # stale: at once

    gate.hold()  # another one on its way: closed again, the stuck one still held
    assert gate.closed
    later = asyncio.create_task(gate.turn())
    await asyncio.sleep(0.05)
    assert not later.done()
    gate.let_go(2)
    await asyncio.wait_for(later, 0.1)
