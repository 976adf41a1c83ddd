"""The write funnel: one transaction per cycle for triggers, outcomes and claims.

Every write of the hot path goes through here. A cycle takes everything submitted since the
last one and, in one transaction (one commit, one fsync):
  1. records the outcomes of finished sends,
  2. claims due events from the queue, highest priority first, if the lease book has room,
  3. inserts the new triggers, leasing the fresh ones straight away when room is left (no claim
     round trip, no poll delay; the lease covers a crash),
  4. evaluates fatigue rules and reserves the sends they allow (profile-based messages).
Then it hands the leased events to the lease book (which passes them to the dispatcher) and
answers every submitter. It knows the dispatcher only through the lease book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

from txmsg.core.delivery import LogEntry
from txmsg.core.fatigue import FatigueCheck
from txmsg.core.feedback import Feedback, FeedbackBatch
from txmsg.core.queue import PRIORITY_BULK, EnqueueResult, NewBatch, NewEvent, Outcome, events_of
from txmsg.engine.leases import LeaseBook
from txmsg.metrics import Metrics
from txmsg.store.batcher import CALM_BATCH, Batcher
from txmsg.store.db import Database
from txmsg.store.outage import OutageLog, is_rolled_back, is_unavailable
from txmsg.store.queue.capped import NO_CAPS, Caps, load_caps
from txmsg.store.queue.cycle import (
    CycleRequest,
    CycleResult,
    Decisions,
    left_queued,
    write_cycle,
)

log = logging.getLogger(__name__)

# For this long after a transactional trigger, while bulk events are in flight or waiting, the
# write cycles keep the two apart (Batcher's `calm`): a transactional trigger goes in a cycle of
# its own, claiming no bulk events, and the others record and claim at most CALM_BATCH at once;
# so a transactional trigger waits for a short cycle under way, not a full claim's worth.
CALM_SECONDS = 1.0
CALM_BULK_IN_FLIGHT = 8  # SQLite: see Writer._calm_room

# Runs of a write cycle that PostgreSQL rolls back to break a deadlock, before it fails.
CONFLICT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Tick:
    """Asks for a cycle with nothing to write: a chance to claim due events."""


_TICK = Tick()
WriteItem = NewEvent | NewBatch | Outcome | LogEntry | Tick | FatigueCheck | FeedbackBatch
Answer = EnqueueResult | Decisions | BaseException | None


def _urgent(item: WriteItem) -> bool:
    """A trigger of a transactional event: it goes in a write cycle ahead of everything else."""
    if isinstance(item, NewEvent):
        return item.priority < PRIORITY_BULK
    return isinstance(item, NewBatch) and any(e.priority < PRIORITY_BULK for e in item.events)


def _weight(item: WriteItem) -> int:
    """A cycle's share of an item: a batch trigger counts its events."""
    return len(item.events) if isinstance(item, NewBatch) else 1


class Writer:
    """The write funnel; satisfies `funnel.WriteFunnel` for the dispatcher."""

    def __init__(
        self,
        db: Database,
        book: LeaseBook,
        metrics: Metrics | None = None,
        caps_ttl: float = 1.0,
    ) -> None:
        self._db = db
        self._book = book
        self._metrics = metrics or Metrics()
        # Channel send-rate caps, reloaded every `caps_ttl` seconds (a changed cap applies
        # within that time in every process).
        self._caps = NO_CAPS
        self._caps_ttl = caps_ttl
        self._caps_outage = OutageLog(log, "reading the channel rate caps")
        self._caps_until = 0.0
        self._settling = False  # the last cycle recorded outcomes (see _cycle)
        self._urgent_at = -CALM_SECONDS  # when the last transactional trigger was submitted
        self._batcher: Batcher[WriteItem, Answer] = Batcher(
            self._cycle,
            max_batch=2000,
            weight=_weight,
            overlap=self._cycles_overlap,
            urgent=_urgent,
            calm=self._calm,
        )
        # PostgreSQL: while calm, transactional triggers have write cycles of their own, beside
        # the funnel's (another pooled connection): they wait for none of its cycles under way.
        # They only insert (leasing at insert), never claim: the funnel's cycles keep the
        # lease book's claims in order. (SQLite has one writer: nothing to run beside.)
        self._express: Batcher[WriteItem, Answer] | None = None
        if not db.is_sqlite:
            self._express = Batcher(partial(self._cycle, express=True), weight=_weight)

    def start(self) -> None:
        self._batcher.start()
        if self._express is not None:
            self._express.start()

    def _cycles_overlap(self) -> bool:
        """Whether the next cycle may start before the last one ends: on PostgreSQL (each cycle
        on its own pooled connection, the event loop free while the other waits on the server)
        when cycles lease nothing (API only), so that no cycle depends on another's leases."""
        return not self._db.is_sqlite and self._book.leases_nothing()

    def _calm(self) -> bool:
        """Transactional triggers came lately, and bulk work is under way."""
        return self._book.bulk_busy and time.monotonic() - self._urgent_at < CALM_SECONDS

    def _calm_room(self) -> int:
        """While calm, how many bulk events a cycle may claim or lease: CALM_BATCH, and on
        SQLite no more than CALM_BULK_IN_FLIGHT in flight. There the write cycles take turns
        with the event loop for the GIL, so the fewer bulk sends keep it busy, the shorter the
        cycle a transactional trigger waits for (PostgreSQL's express cycles wait for none)."""
        if not self._db.is_sqlite:
            return CALM_BATCH
        return min(CALM_BATCH, max(0, CALM_BULK_IN_FLIGHT - self._book.bulk_in_flight))

    async def stop(self) -> None:
        if self._express is not None:
            await self._express.stop()
        await self._batcher.stop()

    async def enqueue(self, event: NewEvent) -> EnqueueResult:
        result = await self._submit_new(event)
        assert isinstance(result, EnqueueResult)
        return result

    async def enqueue_batch(self, batch: NewBatch) -> EnqueueResult:
        """A batch trigger's events, in one transaction under its one Idempotency-Key."""
        result = await self._submit_new(batch)
        assert isinstance(result, EnqueueResult)
        return result

    async def _submit_new(self, item: NewEvent | NewBatch) -> Answer:
        """Submit triggers; bulk sends step aside from now on for the transactional ones
        among them (until they are handed over, which holds them from then on)."""
        urgent = sum(e.priority < PRIORITY_BULK for e in events_of(item))
        gate = self._book.gate
        if urgent:
            self._urgent_at = time.monotonic()
        batcher = self._batcher
        if urgent and self._express is not None and self._calm():
            batcher = self._express
        gate.hold(urgent)
        try:
            return await batcher.submit(item)
        finally:
            gate.let_go(urgent)

    async def record(self, outcome: Outcome) -> None:
        await self._batcher.submit(outcome)

    async def append_log(self, entry: LogEntry) -> None:
        """Append a delivery-log entry (a receipt, ...); returns once committed."""
        await self._batcher.submit(entry)

    async def record_feedback(self, reports: list[Feedback]) -> None:
        """Record bounces or complaints after acceptance, all or none; returns once committed."""
        await self._batcher.submit(FeedbackBatch(tuple(reports)))

    async def tick(self) -> None:
        await self._batcher.submit(_TICK)

    async def reserve(self, check: FatigueCheck) -> Decisions:
        """pkey -> the fatigue rule excluding it, or None (reserved: send it)."""
        result = await self._batcher.submit(check)
        assert isinstance(result, dict)
        return result

    async def _cycle(self, items: list[WriteItem], *, express: bool = False) -> list[Answer]:
        """One write cycle for `items`; `express`: transactional triggers alone, beside the
        funnel's cycles (no claims, no renewals: those stay in the funnel's order)."""
        new = [i for i in items if isinstance(i, NewEvent | NewBatch)]
        outcomes = [i for i in items if isinstance(i, Outcome)]
        entries = [i for i in items if isinstance(i, LogEntry)]
        checks = [i for i in items if isinstance(i, FatigueCheck)]
        feedback = [f for i in items if isinstance(i, FeedbackBatch) for f in i.reports]
        book = self._book
        if self._settling and not express:
            # The last cycle's answers wake the sends whose outcomes it recorded; they release
            # their slots in the next loop turn. Let them first: counted in flight still, they
            # would hide the room the last cycle already gave to its claims (and with it the
            # room kept for transactional events).
            self._settling = False
            await asyncio.sleep(0)
        # Sends whose outcome is recorded in this cycle free their slot with it.
        free = book.free_slots(freed=len(outcomes))
        # Due events waiting in the queue go before fresh ones.
        bulk_free = book.bulk_room(free, outcomes)
        if self._calm():  # a transactional trigger's cycle claims no bulk events
            bulk_free = 0 if any(_urgent(i) for i in new) else min(bulk_free, self._calm_room())
        if self._express is not None and not express and book.bulk_busy:
            # Express cycles may run beside this one while bulk work is under way: it fills
            # the bulk events' room and a short run of others at most, and keeps that much
            # from them (reserved below), so that together they stay within the book.
            free = min(free, bulk_free + CALM_BATCH)
        claim_limit = free if book.may_have_due(free, bulk_free) and not express else 0
        lease = book.lease
        renewals, renewed_until = ([], None) if express else book.leases_to_renew()
        wakes = book.wakes
        book.reserve(free)
        try:
            # Current caps for a claim, new events and outcomes no provider saw (tokens back).
            gives_back = any(o.give_back for o in outcomes)
            caps = await self._current_caps() if claim_limit or new or gives_back else self._caps
            started = time.perf_counter()
            results, claimed, leased, decisions, held_until, renewed = await self._write(
                CycleRequest(
                    new=new,
                    outcomes=outcomes,
                    free=free,
                    claim_limit=claim_limit,
                    bulk_free=bulk_free,
                    lease=lease,
                    renewals=renewals,
                    renewed_until=renewed_until,
                    log_entries=entries,
                    checks=checks,
                    feedback=feedback,
                    wake_others=True,
                    caps=caps,
                    clock=book.now,  # read in the transaction
                ),
            )
        except Exception as exc:
            if (not new and not entries and not feedback) or is_unavailable(exc):
                raise  # nothing to tell apart: every submitter gets the error
            # One bad row must not fail the others: write the parts one at a time.
            log.exception("a write cycle failed; writing its parts one at a time")
            return await self._isolate(items, outcomes, self._caps)  # the caps read above
        finally:
            book.unreserve(free)  # in the loop turn of hand_over below: no cycle between
        if items:  # not a claim or lease renewal alone
            self._metrics.write_commit.observe(time.perf_counter() - started)
            self._metrics.write_batch.observe(len(items))
        if not express:
            self._settling = bool(outcomes) and not book.leases_nothing()
        if renewals and renewed_until is not None:
            book.renewed(renewals, renewed_until, renewed)
        if claim_limit:
            bulk = sum(e.bulk for e in claimed)
            book.claimed(len(claimed), claim_limit, since=wakes, bulk=bulk, bulk_limit=bulk_free)
        if held_until is not None:
            book.wake_at(held_until / 1000)  # a channel cap holds due events until then
        book.hand_over(claimed + leased)
        # Results come in the order of `new`; a created pending event not leased waits queued.
        if left_queued(new, results, len(leased)):
            book.wake()  # due or scheduled events left in the queue
        answers = iter(results)
        decided = iter(decisions)
        return [
            next(answers)
            if isinstance(i, NewEvent | NewBatch)
            else next(decided)
            if isinstance(i, FatigueCheck)
            else None
            for i in items
        ]

    async def _write(self, request: CycleRequest) -> CycleResult:
        """One cycle; run again when PostgreSQL rolled it back to break a deadlock with another
        transaction (nothing of it was written). Failing it instead would fail the outcomes of
        sends already made: their events would be claimed and sent again after their lease."""
        attempt = 1
        while True:
            try:
                return await self._db.write_bounded(write_cycle, request)
            except Exception as exc:
                if attempt >= CONFLICT_ATTEMPTS or not is_rolled_back(exc):
                    raise
                log.warning("a write cycle was rolled back by a conflict (%s); again", exc)
            attempt += 1

    async def _current_caps(self) -> Caps:
        """The channel caps, reloaded once `caps_ttl` has passed (one query)."""
        if time.monotonic() >= self._caps_until:
            try:
                self._caps = await self._db.read_bounded(load_caps)
            except Exception as exc:
                # Claims go on under the caps last read; the next cycle reads them again.
                if not self._caps_outage.failed(exc):
                    log.exception("reading the channel rate caps failed; keeping the last ones")
            else:
                self._caps_outage.ok()
                self._caps_until = time.monotonic() + self._caps_ttl
        return self._caps

    async def _isolate(
        self, items: list[WriteItem], outcomes: list[Outcome], caps: Caps
    ) -> list[Answer]:
        # Log entries apart from outcomes, each alone: a bad receipt fails no send's outcome.
        # The outcomes with the cycle's caps: those no provider saw give their tokens back.
        clock = self._book.now  # the database's time, as in every cycle
        outcome_error: BaseException | None = None
        try:
            await self._db.write_bounded(
                write_cycle, CycleRequest(outcomes=outcomes, caps=caps, clock=clock)
            )
        except Exception as exc:  # noqa: BLE001 - handed to the outcomes' submitters
            outcome_error = exc
        answers: list[Answer] = []
        for item in items:
            if isinstance(item, NewEvent | NewBatch):
                try:
                    results, *_ = await self._db.write_bounded(
                        write_cycle, CycleRequest(new=[item], wake_others=True, clock=clock)
                    )
                    answers.append(results[0])
                except Exception as exc:  # noqa: BLE001 - raised to this trigger's caller
                    answers.append(exc)
            elif isinstance(item, FatigueCheck):
                try:
                    cycle = await self._db.write_bounded(
                        write_cycle, CycleRequest(checks=[item], clock=clock)
                    )
                    [decided] = cycle.decisions
                    answers.append(decided)
                except Exception as exc:  # noqa: BLE001 - raised to this check's dispatcher
                    answers.append(exc)
            elif isinstance(item, LogEntry | FeedbackBatch):
                try:
                    if isinstance(item, LogEntry):
                        await self._db.write_bounded(
                            write_cycle, CycleRequest(log_entries=[item], clock=clock)
                        )
                    else:
                        await self._db.write_bounded(
                            write_cycle, CycleRequest(feedback=list(item.reports), clock=clock)
                        )
                    answers.append(None)
                except Exception as exc:  # noqa: BLE001 - raised to this entry's submitter
                    answers.append(exc)
            else:
                answers.append(outcome_error if isinstance(item, Outcome) else None)
        self._book.wake()  # the events written here wait in the queue
        return answers
