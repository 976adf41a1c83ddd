"""The lease book on its own: capacity and batched claims, the due flag, renewals, lost leases,
stopping, and the hand-over of leased events to the dispatcher."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from helpers import leased_event
from txmsg.core.queue import PRIORITY_BULK, ClaimedEvent, Outcome
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook

LEASE = timedelta(seconds=60)


def leased(event_id: int, until: datetime | None = None) -> ClaimedEvent:
    return leased_event(event_id, until=until)


def book_with_consumer(max_in_flight: int = 8) -> tuple[LeaseBook, list[list[ClaimedEvent]]]:
    book = LeaseBook(max_in_flight=max_in_flight, lease=LEASE)
    received: list[list[ClaimedEvent]] = []
    book.consume(received.append)
    return book, received


async def test_without_a_consumer_nothing_is_leased() -> None:
    """API only (no dispatcher running): the writer sees no room, however many outcomes."""
    book = LeaseBook(max_in_flight=8, lease=LEASE)
    assert book.free_slots() == 0
    assert book.free_slots(freed=3) == 0
    assert not book.wants_claim(book.free_slots())
    assert not book.may_have_due(book.free_slots())
    with pytest.raises(RuntimeError, match="no consumer"):
        book.hand_over([leased(1)])
    book.hand_over([])  # nothing leased: nothing to refuse


async def test_capacity_and_claims_in_batches_from_the_low_water_mark() -> None:
    book, _ = book_with_consumer(max_in_flight=8)  # low-water mark: 8 // 4 = 2
    assert book.lease == LEASE
    assert book.free_slots() == 8
    assert book.wants_claim(8)
    book.hand_over([leased(i) for i in range(7)])
    assert book.in_flight == 7
    assert book.free_slots() == 1
    # One free slot: not worth a cycle of its own, but a cycle running anyway may claim it.
    assert not book.wants_claim(book.free_slots())
    assert book.may_have_due(book.free_slots())
    # Outcomes recorded in this cycle free their slots with it.
    assert book.free_slots(freed=3) == 4
    book.release([leased(0)])
    assert book.free_slots() == 2
    assert book.wants_claim(book.free_slots())
    book.hand_over([leased(7), leased(8)])
    assert book.free_slots() == 0  # never negative, even over capacity
    assert not book.may_have_due(0)


async def test_one_free_slot_is_worth_a_claim_when_nothing_is_in_flight() -> None:
    book, _ = book_with_consumer(max_in_flight=1)
    assert book.wants_claim(1)
    book.hand_over([leased(1)])
    assert not book.wants_claim(book.free_slots())
    book.release([leased(1)])
    assert book.in_flight == 0
    assert book.wants_claim(book.free_slots())


async def test_the_due_flag() -> None:
    book, _ = book_with_consumer()
    assert book.wants_claim(8)  # at start, due events may be waiting
    book.claimed(5, 5, since=book.wakes)  # a full claim: more may be waiting
    assert book.wants_claim(8)
    book.claimed(3, 5, since=book.wakes)  # a short claim: the queue has nothing more due
    assert not book.wants_claim(8)
    assert not book.may_have_due(8)
    book.wake()  # something may have made events due
    assert book.wants_claim(8)
    assert book.may_have_due(1)


async def test_a_wake_while_a_claim_reads_the_queue_is_not_lost() -> None:
    book, _ = book_with_consumer()
    since = book.wakes  # a write cycle begins its claim
    book.wake()  # meanwhile another process commits an event the claim did not see
    book.claimed(0, 8, since=since)  # the claim comes back empty
    assert book.may_have_due(1)  # the wake stands: the next cycle claims again
    book.claimed(0, 8, since=book.wakes)  # a short claim with no wake meanwhile
    assert not book.may_have_due(1)


async def test_a_wait_ends_on_a_wake_or_times_out_marking_events_due() -> None:
    book, _ = book_with_consumer()
    book.claimed(0, 8, since=book.wakes)
    book.clear_signal()
    await asyncio.wait_for(book.wait(0.01), 1)  # timed out: scheduled events may be due now
    assert book.may_have_due(1)

    book.claimed(0, 8, since=book.wakes)
    book.clear_signal()
    waiter = asyncio.create_task(book.wait(30))
    await asyncio.sleep(0)
    assert not waiter.done()
    book.wake()
    await asyncio.wait_for(waiter, 1)
    assert book.may_have_due(1)


async def test_a_release_wakes_the_claimer_only_once_a_claim_is_worth_it() -> None:
    book, _ = book_with_consumer(max_in_flight=8)
    events = [leased(i) for i in range(8)]
    book.hand_over(events)
    book.clear_signal()
    book.release(events[:1])  # one slot free: below the low-water mark
    waiter = asyncio.create_task(book.wait(30))
    await asyncio.sleep(0)
    assert not waiter.done()
    book.release(events[1:2])  # two free: a claim of its own is worth it
    await asyncio.wait_for(waiter, 1)


async def test_renewals_are_the_leases_past_half_their_time() -> None:
    book, _ = book_with_consumer()
    now = utcnow()
    fresh, old, older = leased(1), leased(2, now + LEASE / 4), leased(3, now + LEASE / 3)
    book.hand_over([fresh, old, older])
    renewals, until = book.leases_to_renew()
    assert sorted(renewals) == [(2, "token-2"), (3, "token-3")]
    assert until is not None and until - utcnow() > LEASE * 0.9
    # The write cycle renewed them; one was released meanwhile and stays released.
    book.release([older])
    book.renewed(renewals, until, {2, 3})
    assert book.leases_to_renew() == ([], None)
    assert not book.lost(old)
    assert book.lost(older)


async def test_a_lease_the_database_did_not_renew_is_lost() -> None:
    """Another claim took the event (its lease lapsed while this process was frozen or cut
    off): the database renews only the leases still this process's."""
    book, _ = book_with_consumer()
    now = utcnow()
    kept, taken = leased(1, now + LEASE / 4), leased(2, now + LEASE / 4)
    book.hand_over([kept, taken])
    renewals, until = book.leases_to_renew()
    assert until is not None
    book.renewed(renewals, until, {1})
    assert not book.lost(kept)
    assert book.lost(taken)
    assert book.leases_to_renew() == ([], None)  # nor asked for again


async def test_no_renewals_when_none_is_past_half_its_time() -> None:
    book, _ = book_with_consumer()
    book.hand_over([leased(1)])
    assert book.leases_to_renew() == ([], None)


async def test_a_lease_is_lost_once_lapsed_or_released() -> None:
    book, _ = book_with_consumer()
    held, lapsed, never = leased(1), leased(2, utcnow() - timedelta(seconds=1)), leased(3)
    book.hand_over([held, lapsed])
    assert not book.lost(held)
    assert book.lost(lapsed)
    assert book.lost(never)
    book.release([held])
    assert book.lost(held)


async def test_a_claim_whose_lease_lapsed_never_takes_the_next_claim_of_its_event() -> None:
    """Under load a lease lapses mid-send and this process claims the event again: the first
    claim must see its lease lost (it would send the message twice), and neither its release
    nor a renewal of its old lease may touch the new claim's."""
    book, _ = book_with_consumer()
    first = leased(1, utcnow() - timedelta(seconds=1))
    again = replace(leased(1), lease_token="token-again")
    book.hand_over([first])
    renewals, until = book.leases_to_renew()
    book.hand_over([again])
    assert book.lost(first)
    assert not book.lost(again)
    assert until is not None
    book.renewed(renewals, until, {1})  # the old lease's renewal, answered late
    assert not book.lost(again) and book.lost(first)
    book.release([first])
    assert not book.lost(again)
    assert book.in_flight == 1
    book.release([again])
    assert book.lost(again) and book.in_flight == 0


async def test_once_stopping_there_are_no_free_slots() -> None:
    book, _ = book_with_consumer()
    book.hand_over([leased(1)])
    assert not book.stopping
    book.clear_signal()
    book.stop()
    assert book.stopping
    assert book.free_slots() == 0
    assert book.free_slots(freed=1) == 0
    assert not book.may_have_due(book.free_slots())
    await asyncio.wait_for(book.wait(30), 1)  # a stop ends the current wait


async def test_leased_events_reach_the_consumer_in_the_same_loop_turn() -> None:
    book, received = book_with_consumer()
    first, second = [leased(1), leased(2)], [leased(3)]
    book.hand_over(first)
    # No await since: the consumer already has them (no queue hop, no added latency).
    assert received == [first]
    book.hand_over(second)
    assert received == [first, second]
    assert book.in_flight == 3
    assert not book.lost(second[0])


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        LeaseBook(max_in_flight=0, lease=LEASE)


async def test_wake_at_wakes_once_at_the_earliest_time_asked() -> None:
    """A channel cap's window end: the book wakes then (the earlier of two asked)."""
    book = LeaseBook(max_in_flight=4, lease=timedelta(seconds=5))
    book.consume(lambda events: None)
    book.claimed(0, 4, since=book.wakes)
    assert not book.wants_claim(book.free_slots())
    wakes = book.wakes
    book.wake_at(time.time() + 0.6)
    book.wake_at(time.time() + 0.15)
    book.wake_at(time.time() + 0.4)  # later than the one set: kept
    started = time.monotonic()
    await asyncio.wait_for(book.wait(10), 5)
    assert 0.1 <= time.monotonic() - started < 0.5
    assert book.wakes == wakes + 1 and book.wants_claim(book.free_slots())


def bulk(event_id: int) -> ClaimedEvent:
    return replace(leased(event_id), priority=PRIORITY_BULK)


async def test_bulk_events_leave_a_quarter_of_the_slots_to_the_transactional_lane() -> None:
    book, _ = book_with_consumer(8)  # bulk share 6: 2 slots kept for transactional events
    assert book.bulk_room(book.free_slots()) == 6
    book.hand_over([bulk(i) for i in range(5)])
    assert book.bulk_room(book.free_slots()) == 1 and book.free_slots() == 3
    book.hand_over([bulk(5), leased(6)])
    assert book.bulk_room(book.free_slots()) == 0 and book.free_slots() == 1
    book.release([leased(6)])  # (while it was in flight, bulk claims paused: the bulk gate)
    # Bulk outcomes recorded in a cycle free their bulk slots in it; transactional ones do not.
    done = [Outcome(i, f"token-{i}", EventStatus.PROCESSED) for i in (0, 6)]
    assert book.bulk_room(book.free_slots(freed=2), done) == 1


async def test_a_claim_stopped_at_the_bulk_bound_claims_again_once_bulk_has_room() -> None:
    book, _ = book_with_consumer(8)
    book.hand_over([bulk(i) for i in range(6)])
    # The claim took no bulk event (no room) and found no transactional one.
    book.claimed(0, 2, since=book.wakes, bulk=0, bulk_limit=0)
    assert not book.wants_claim(book.free_slots())  # nothing to claim: no spinning
    book.release([bulk(0)])
    assert not book.wants_claim(book.free_slots())  # bulk room 1: below a quarter
    assert book.may_have_due(book.free_slots())  # a cycle under way may take that one
    book.release([bulk(1)])
    assert book.wants_claim(book.free_slots())  # bulk room 2: claim the bulk left waiting
    # A claim that took fewer bulk events than it could: no bulk is left waiting.
    book.claimed(1, 4, since=book.wakes, bulk=1, bulk_limit=2)
    book.release([bulk(2), bulk(3)])
    assert not book.wants_claim(book.free_slots())
    assert not book.may_have_due(book.free_slots())
