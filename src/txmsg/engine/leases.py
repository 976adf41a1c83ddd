"""The lease book: what this process holds of the queue, shared by the writer and the dispatcher.

The writer claims and leases events in its write cycles; the dispatcher sends them. Both need
the same state (how much room there is, whether due events may be waiting, which leases are held
and until when), and neither should know the other: the app factory makes one book and hands it
to both. The writer asks it how much to claim and hands it what it claimed; the dispatcher
registers the consumer that starts sending, and releases each event once its outcome is recorded.

At most `max_in_flight` events are leased at a time. A cycle of its own claims again once a
quarter of that is free, so a backlog of low-priority work delays a transactional event by at
most one in-flight batch. Bulk events hold at most `bulk_share` of the slots (all but a quarter):
the rest is always free for the transactional lane, so a transactional event is leased (at
insert, or by a claim) at once however much bulk work is under way. After a claim held back by
that bound, cycles that run anyway claim bulk events into any bulk room, and a cycle of its own
once a quarter of capacity is free in the bulk share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta

from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.timeutil import utcnow
from txmsg.engine.bulk_gate import BulkGate

# While a transactional event is on its way, one paused bulk step goes on every so often
# (engine/bulk_gate.py): a bulk send has three steps, so about 170 bulk sends a second.
BULK_TRICKLE_SECONDS = 0.002

# The end of a lease whose renewal the database refused: lapsed already (`lost`).
_LOST = datetime.min.replace(tzinfo=UTC)

Consumer = Callable[[list[ClaimedEvent]], None]
"""Starts sending leased events; called in the loop turn that hands them over (no queue hop)."""


class LeaseBook:
    def __init__(
        self,
        *,
        max_in_flight: int,
        lease: timedelta,
        clock: Callable[[], datetime] = utcnow,
        bulk_trickle: float = BULK_TRICKLE_SECONDS,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._max_in_flight = max_in_flight
        self._lease = lease
        # The database's time as this process estimates it: lease ends are the database's.
        self._clock = clock
        self._low_water = max(1, max_in_flight // 4)
        # Slots bulk events may hold: the others are the transactional lane's alone.
        self._bulk_share = max(1, max_in_flight - self._low_water)
        # Bulk work pauses while a transactional event is accepted or sent here: the writer
        # and the dispatcher hold the gate through the book.
        self.gate = BulkGate(trickle=bulk_trickle, on_open=self._bulk_may_go)
        self._in_flight = 0
        # Slots write cycles under way may fill (PostgreSQL's express cycles run beside the
        # funnel's): taken, for any other cycle, until the cycle hands its events over.
        self._reserved = 0
        self._bulk: set[int] = set()  # the bulk events in flight, by id
        # A claim stopped at the bulk bound: bulk events may be waiting for room.
        self._bulk_waiting = False
        # Whether due events may be waiting in the database (cleared by a claim that came
        # back short, set by anything that may have made events due).
        self._maybe_due = True
        self._wakes = 0
        self._signal = asyncio.Event()
        self._stopping = False
        # Events leased to this process and not yet released: id -> (lease token, until).
        self._leases: dict[int, tuple[str, datetime]] = {}
        self._consumer: Consumer | None = None
        # A wake at a rate window's end, and when (the loop's clock).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # Capacity.
    @property
    def lease(self) -> timedelta:
        """How long a claim or a renewal leases an event for."""
        return self._lease

    def now(self) -> datetime:
        """The time claims and leases start from (the database's clock)."""
        return self._clock()

    @property
    def bulk_in_flight(self) -> int:
        return len(self._bulk)

    @property
    def bulk_busy(self) -> bool:
        """Bulk events are in flight, or a claim left some waiting in the queue."""
        return bool(self._bulk) or self._bulk_waiting

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def stopping(self) -> bool:
        return self._stopping

    def leases_nothing(self) -> bool:
        """No consumer (API only): write cycles claim, lease and renew nothing, so they are
        independent of each other and of the book, and may overlap."""
        return self._consumer is None

    def free_slots(self, freed: int = 0) -> int:
        """Room for more events, counting `freed` in flight as released (their outcomes are
        being recorded) and the slots reserved by write cycles under way as taken; 0 without
        a consumer (API only) or once stopping."""
        if self._stopping or self._consumer is None:
            return 0
        return max(0, self._max_in_flight - self._in_flight - self._reserved) + freed

    def reserve(self, slots: int) -> None:
        """Hold `slots` for a write cycle under way, until `unreserve`."""
        self._reserved += slots

    def unreserve(self, slots: int) -> None:
        self._reserved -= slots

    def bulk_room(self, free: int, recorded: Iterable[Outcome] = ()) -> int:
        """Of `free`, how many slots bulk events may take, counting the bulk events of the
        `recorded` outcomes as released."""
        if self.gate.closed and self._bulk:
            return 0  # they would wait at the gate: claim more once these are done
        freed = sum(o.id in self._bulk for o in recorded)
        return min(free, max(0, self._bulk_share - len(self._bulk) + freed))

    def wants_claim(self, free: int) -> bool:
        """For a cycle of its own: claim in batches, once a quarter of capacity is free (of
        the bulk share, for bulk events a claim left waiting at the bulk bound)."""
        if self._bulk_waiting and self.bulk_room(free) >= self._low_water:
            return True
        return self._maybe_due and (free >= self._low_water or (free > 0 and self._in_flight == 0))

    def may_have_due(self, free: int, bulk_free: int | None = None) -> bool:
        """For a cycle that runs anyway: claiming there costs one statement; any room will do
        (`bulk_free` of it for bulk events, by default `bulk_room(free)`)."""
        if self._bulk_waiting:
            bulk_free = self.bulk_room(free) if bulk_free is None else bulk_free
            if bulk_free > 0:
                return True
        return self._maybe_due and free > 0

    def claimed(
        self, count: int, limit: int, *, since: int, bulk: int = 0, bulk_limit: int | None = None
    ) -> None:
        """A claim came back: short of its limit, no due events are left waiting, unless the
        book was woken since `since` (its `wakes` when the claim's cycle began): what woke it
        (another process's commit, say) may have come after the claim read the queue. Bulk
        events (`bulk` of `count`) up to a `bulk_limit` short of `limit`: more bulk ones may
        wait for room."""
        self._bulk_waiting = bulk_limit is not None and bulk_limit < limit and bulk >= bulk_limit
        if count < limit and self._wakes == since:
            self._maybe_due = False

    # Due flag and wake-up signal.
    @property
    def wakes(self) -> int:
        """How many times events may have become due so far (wakes and timed-out waits)."""
        return self._wakes

    def wake(self) -> None:
        """Events may have become due (queued triggers, a resume, released leases)."""
        self._mark_due()
        self._signal.set()

    def wake_at(self, epoch_seconds: float) -> None:
        """Wake at that time of the database's clock (a channel cap's window ends: the events
        it held may go), or earlier if a wake is set for earlier already."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Windows are the database's: by this machine's clock, one running ahead would wake
        # (and claim in vain) over and over until the window ended.
        when = now + max(0.0, epoch_seconds - self._clock().timestamp())
        if self._timer is not None and now < self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self.wake), when

    def _bulk_may_go(self) -> None:
        """The bulk gate opened: claim the bulk events a closed gate held back."""
        if self.wants_claim(self.free_slots()):
            self._signal.set()

    def _mark_due(self) -> None:
        self._maybe_due = True
        self._wakes += 1

    def clear_signal(self) -> None:
        """Before looking for work: a wake from now on ends the next `wait`."""
        self._signal.clear()

    async def wait(self, timeout: float) -> None:
        """Until woken or stopped, or `timeout` seconds (then events may have come due)."""
        try:
            await asyncio.wait_for(self._signal.wait(), timeout)
        except TimeoutError:
            self._mark_due()  # scheduled events and retries come due with time

    def stop(self) -> None:
        """Lease nothing more (free slots 0) and end the current wait."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self._signal.set()

    # Leases held.
    def leases_to_renew(self) -> tuple[list[tuple[int, str]], datetime | None]:
        """Leases past half their time, and their new end: renewed by the next write cycle."""
        now = self._clock()
        half = self._lease / 2
        due = [
            (i, token)
            for i, (token, until) in self._leases.items()
            if until - now < half and until != _LOST  # one lost stays lost
        ]
        return due, (now + self._lease if due else None)

    def renewed(
        self, leases: list[tuple[int, str]], until: datetime, kept: Collection[int]
    ) -> None:
        """A write cycle asked to renew these leases, and the database renewed those of the
        event ids `kept`: they last until `until`. The others were lost: the lease lapsed and
        another claim took the event (this process frozen, or cut off from the database), and
        their sends must not start. The ones released meanwhile stay released."""
        for event_id, token in leases:
            held = self._leases.get(event_id)
            if held is not None and held[0] == token:  # not a later claim's lease
                self._leases[event_id] = (token, until if event_id in kept else _LOST)

    def tokens(self) -> set[str]:
        """The tokens of the leases held (not lost): this process's own sweep keeps them."""
        return {token for token, until in self._leases.values() if until != _LOST}

    def taken(self, event: ClaimedEvent) -> bool:
        """Whether the event's lease is known to be gone: released, or found taken by another
        claim when the database was asked to renew it (a lease merely past its end may still
        be the event's: no other process swept it while none could reach the database)."""
        held = self._leases.get(event.id)
        return held is None or held[0] != event.lease_token or held[1] == _LOST

    def lost(self, event: ClaimedEvent) -> bool:
        """Whether the event's lease lapsed or was released (another claim may own it). By
        its token: when the event was claimed again by this process, the new claim's lease
        is not the old one's."""
        held = self._leases.get(event.id)
        return held is None or held[0] != event.lease_token or held[1] <= self._clock()

    # Hand-over.
    def consume(self, consumer: Consumer) -> None:
        """Register the one consumer of leased events (the dispatcher); free slots from now on."""
        self._consumer = consumer

    def hand_over(self, events: list[ClaimedEvent]) -> None:
        """Count the leased events in flight, hold their leases, and pass them to the consumer."""
        if not events:
            return
        if self._consumer is None:  # free_slots() was 0: nothing can have been leased
            raise RuntimeError(f"{len(events)} leased events handed over with no consumer")
        self._in_flight += len(events)
        for event in events:
            self._leases[event.id] = (event.lease_token, event.lease_until)
            if event.bulk:
                self._bulk.add(event.id)
        self.gate.hold(sum(not e.bulk for e in events))  # until released
        self._consumer(events)

    def release(self, events: Iterable[ClaimedEvent]) -> None:
        """Done with these events (outcome recorded, or their lease left to expire): their
        slots are free again; wake the claimer once a claim is worth it."""
        urgent = 0
        for event in events:
            held = self._leases.get(event.id)
            if held is not None and held[0] == event.lease_token:
                del self._leases[event.id]  # not a later claim's lease of the same event
                self._bulk.discard(event.id)
            self._in_flight -= 1
            urgent += not event.bulk
        if urgent:
            self.gate.let_go(urgent)
        if self.wants_claim(self.free_slots()):
            self._signal.set()
