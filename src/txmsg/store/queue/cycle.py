"""The write cycle: one transaction for everything the write funnel gathered since the last.

In one transaction (one commit, one fsync):
  1. records the outcomes of finished sends (and what comes with them: receipts, bounces,
     feedback, message export records), renews the leases of slow sends,
  2. claims due events from the queue, highest priority first, if the dispatcher has room,
  3. inserts the new triggers, leasing the fresh ones straight to the dispatcher when room is
     left (no claim round trip, no poll delay; the lease covers a crash),
  4. evaluates fatigue rules and reserves the sends they allow (profile-based messages).
The report counts and webhook calls these set off are written here, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy.engine import Connection

from txmsg.core.delivery import LogEntry
from txmsg.core.export_record import to_micros
from txmsg.core.fatigue import FatigueCheck
from txmsg.core.feedback import Feedback
from txmsg.core.queue import ClaimedEvent, EnqueueResult, NewBatch, NewEvent, Outcome, events_of
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import (
    fatigue,
    feedback,
    message_export,
    profiles,
    report_counts,
    sms_receipts,
    typology,
    wakeups,
)
from txmsg.store import webhook_outbox as outbox
from txmsg.store.queue import capped, enqueue, leases, outcomes
from txmsg.store.queue.capped import NO_CAPS, CappedClaim, Caps

# A fatigue check's answer: PKey -> the rule excluding it, or None (reserved: send it).
Decisions = dict[str, str | None]


@dataclass(frozen=True, slots=True)
class CycleRequest:
    """What one cycle writes, and how much it may lease to the dispatcher."""

    new: Sequence[NewEvent | NewBatch] = ()  # single triggers, and batch triggers whole
    outcomes: Sequence[Outcome] = ()
    free: int = 0  # dispatcher slots free for new events leased at insert
    claim_limit: int = 0  # claim up to this many due events from the queue first
    # Of `free`, how many may be bulk events, claimed or leased at insert (None: no bound).
    bulk_free: int | None = None
    lease: timedelta | None = None  # None: no dispatcher, nothing is leased
    renewals: Sequence[tuple[int, str]] = ()  # (event id, lease token) to extend...
    renewed_until: datetime | None = None  # ... to this
    log_entries: Sequence[LogEntry] = ()  # delivery receipts
    checks: Sequence[FatigueCheck] = ()
    feedback: Sequence[Feedback] = ()  # bounces and complaints after acceptance
    # Wake other processes' workers when new events are left queued (PostgreSQL's NOTIFY: one
    # statement per cycle, at most); the writer sets it, a direct caller writes only the rows.
    wake_others: bool = False
    caps: Caps = NO_CAPS  # channel send-rate caps: claims take their tokens
    # The database's time (`DatabaseClock`), by which the cycle times what it writes into
    # shared state (outcomes, fatigue reservations and windows, export records, delivery-log
    # entries, webhook calls) and when claims and leases start; None: this process's clock.
    # With `clock`, read from it in the transaction, again just before the claim: a claim's
    # `processing` is then never timed before the commit that made its event claimable (a
    # lease released by another process's sweep while this cycle waited).
    now: datetime | None = None
    clock: Callable[[], datetime] | None = None


class CycleResult(NamedTuple):
    results: list[EnqueueResult]  # one per new item (event or batch), in order
    claimed: list[ClaimedEvent]  # due events claimed from the queue
    leased: list[ClaimedEvent]  # new events leased at insert
    decisions: list[Decisions]  # one per fatigue check, in order
    held_until_ms: int | None = None  # a channel cap holds due events until then (epoch ms)
    renewed: frozenset[int] = frozenset()  # the ids of the renewals the database made


def write_cycle(conn: Connection, request: CycleRequest) -> CycleResult:
    """Write `request` in the caller's transaction (`Database.write`): all of it, or none."""
    stamp = _now(request)
    recorded = outcomes.record_in(conn, request.outcomes, stamp)
    report_counts.add(conn, report_counts.of_outcomes(recorded.applied))
    fatigue.release_in(conn, recorded.unsent)
    capped.give_back_unsent_in(conn, request.caps, recorded.given_back)
    outbox.queue_status_changes(conn, recorded.announced, stamp)
    _record_with_outcomes(conn, request, stamp)
    renewed: set[int] = set()
    if request.renewals and request.renewed_until is not None:
        renewed = leases.renew_in(conn, request.renewals, request.renewed_until)
    now = request.clock() if request.clock is not None else stamp
    claim = CappedClaim(capped.Claimed())
    if request.claim_limit and request.lease is not None:
        claim = capped.claim_in(
            conn,
            request.caps,
            request.claim_limit,
            request.lease,
            now,
            bulk_limit=request.bulk_free,
        )
    claimed = claim.claimed
    room = max(0, request.free - len(claimed.events))
    bulk_room = None
    if request.bulk_free is not None:
        bulk_room = max(0, request.bulk_free - sum(e.bulk for e in claimed.events))
    new = enqueue.enqueue_in(
        conn,
        request.new,
        claim=room,
        bulk_claim=bulk_room,
        lease=request.lease,
        hold=request.caps.held,
        now=now,
    )
    if request.wake_others and left_queued(request.new, new.results, len(new.leased)):
        wakeups.announce_in(conn)  # one per cycle: other processes' workers may take them
    outbox.queue_status_changes(conn, claimed.announced + new.announced, now)
    # In order, in this transaction: each check counts the reservations of the ones before.
    decisions = [fatigue.reserve_in(conn, c.requests, c.rules, stamp) for c in request.checks]
    if _claim_alone(request) and not claimed.events and not claimed.announced:
        # A claim that found nothing took its channel caps' tokens and gave them all back:
        # rolled back, not committed. A commit would wake every other process's idle worker
        # (SQLite's data_version) to claim in turn, and theirs this one, for as long as a
        # channel has a cap; nor is an fsync worth paying for nothing.
        conn.rollback()
    return CycleResult(
        new.results,
        claimed.events,
        new.leased,
        decisions,
        claim.held_until_ms,
        frozenset(renewed),
    )


def _now(request: CycleRequest) -> datetime:
    """The database's time when the request carries it (the writer's always does); else this
    process's clock (a direct caller: tests, one-off writes)."""
    if request.clock is not None:
        return request.clock()
    return request.now or utcnow()


def _claim_alone(request: CycleRequest) -> bool:
    """The cycle writes nothing but what its claim does."""
    return not (
        request.new
        or request.outcomes
        or request.log_entries
        or request.checks
        or request.feedback
        or request.renewals
    )


def left_queued(
    new: Sequence[NewEvent | NewBatch], results: Sequence[EnqueueResult], leased: int
) -> int:
    """How many created pending events this cycle left in the queue (not leased at insert)."""
    queued = sum(
        e.status == EventStatus.PENDING
        for item, r in zip(new, results, strict=True)
        if r.kind == "created"
        for e in events_of(item)
    )
    return max(0, queued - leased)


def _record_with_outcomes(conn: Connection, request: CycleRequest, now: datetime) -> None:
    """What the sends and their providers reported, beside the outcomes, stamped `now` (the
    database's time)."""
    if request.log_entries:  # receipts: a retried callback already recorded is dropped
        sms_receipts.append_receipts_in(conn, list(request.log_entries))
    for outcome in request.outcomes:
        if outcome.bounce is not None:
            typology.record_bounce_in(conn, outcome.bounce, now)
        stop = outcome.opt_out
        if stop is not None:  # an SMS STOP: the number held, and the person's profile opted out
            typology.record_opt_out_in(conn, stop, now)
            if outcome.profile_id is not None:
                profiles.opt_out_by_person(conn, outcome.profile_id, stop.channel, now)
    if request.feedback:  # bounces and complaints after acceptance, with quarantine or denylist
        feedback.record_in(conn, list(request.feedback))
    exports = [o for o in request.outcomes if o.export is not None]
    if exports:  # same transaction as the status: a record iff the send is recorded
        message_export.record_in(conn, exports, to_micros(now))
