"""Periodic housekeeping: expired leases, expired events, idempotency keys, paused events,
fatigue reservations, profiles of scheduled profile-based events; and the periodic jobs
(export flows and purges, the interaction-data lifecycle), each in a loop of its own.

However many workers share the database, one process at a time runs them: each loop runs its
job only while this process holds the scheduler lock (`store/scheduler_lock.py`), and another
takes it over when its holder stops, dies or stops answering. Lease ends are compared against
the database's clock, read in the housekeeping's own transaction (by the others, at the same
interval). The holder's sweep leaves its own process's leases alone: a lease ends for want of
a live worker, and this one is alive. After a database outage (seen by this process: from its
last sweep or clock reading that succeeded to the first after it), the leases that ended
during it stay for one lease time: they ended because no process could reach the database to
renew them, and their workers, alive, record the sends they made meanwhile (released first,
those events would be sent a second time). Each outage holds its own leases for its own
lease time: outages that follow one another hold none for longer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from txmsg.store import fatigue, report_counts, wakeups
from txmsg.store import webhook_outbox as outbox
from txmsg.store.clock import DatabaseClock
from txmsg.store.db import Database
from txmsg.store.outage import OutageLog
from txmsg.store.queue import housekeeping, leases
from txmsg.store.scheduler_lock import SchedulerLock, scheduler_lock_for
from txmsg.store.targeting import pretarget_scheduled

# How long a dead SQLite holder keeps the scheduler lock, in sweep intervals (at least 1 s).
LOCK_INTERVALS = 3

log = logging.getLogger(__name__)


def _housekeeping(
    conn: Connection,
    clock: DatabaseClock,
    own: Collection[str],
    held: Sequence[tuple[datetime, datetime]] = (),
) -> tuple[int, int]:
    now = clock.sync_in(conn)  # the database's time: lease ends are compared against it
    released = leases.release_expired_in(conn, now, own, held)
    outbox.queue_status_changes(conn, released.announced, now)
    resumed = housekeeping.resume_paused_of_live_events(conn, now)
    outbox.queue_status_changes(conn, resumed.announced, now)
    if released.count or resumed.count:
        wakeups.announce_in(conn)  # other processes' workers may take them
    expired = housekeeping.expire_queued(conn, now)
    report_counts.add(conn, report_counts.of_changes(expired.changes))
    fatigue.release_in(conn, [c.pkey for c in expired.changes])  # never sent
    outbox.queue_status_changes(conn, expired.announced, now)
    housekeeping.purge_idempotency_keys(conn, now)
    fatigue.purge_reservations(conn, now)
    pretarget_scheduled(conn, now=now)
    return released.count + resumed.count, expired.count


class Scheduler:
    def __init__(
        self,
        db: Database,
        interval: float,
        on_released: Callable[[], None],
        jobs: Sequence[Callable[[], Awaitable[None]]] = (),
        lock: SchedulerLock | None = None,
        own_leases: Callable[[], Collection[str]] = frozenset,
        lease: timedelta = timedelta(0),
    ) -> None:
        self._db = db
        # Outages, in the database's time as this process estimates it: when the last sweep
        # (or clock reading) succeeded, when the one under way began, and those that ended
        # lately (start, end, until when the leases that ended in them stay).
        self._lease = lease
        self._last_ok: datetime | None = None
        self._down_since: datetime | None = None
        self._outages: list[tuple[datetime, datetime, datetime]] = []
        # The lease tokens this process holds: its own sweep never releases them.
        self._own_leases = own_leases
        self._lock = lock or scheduler_lock_for(db, ttl=max(1.0, LOCK_INTERVALS * interval))
        self._interval = interval
        self._on_released = on_released
        # Other periodic jobs (export flows, retention purges), each in a loop of its own so
        # a long one never delays the housekeeping.
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="txmsg-scheduler")]
        self._tasks += [asyncio.create_task(self._every(job)) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # After its jobs ended: the next holder never runs one beside them.
        await self._lock.release()

    async def run_once(self) -> None:
        """One housekeeping sweep, now (lock or not: the loops ask for the lock first)."""
        own = self._own_leases()
        released, expired = await self._db.write(_housekeeping, self._db.clock, own, self._held())
        await self._db.checkpoint()
        if released:
            log.info("%d events back in the queue", released)
            self._on_released()
        if expired:
            log.info("%d queued events expired (tooOld)", expired)

    async def _run(self) -> None:
        outage = OutageLog(log, "housekeeping")
        while True:
            try:
                if await self._lock.hold():
                    await self.run_once()
                else:
                    # The holder's sweep reads the database's time; the others read it too, so
                    # a step of this machine's clock (NTP, a resumed VM) lasts one interval at
                    # most in their claims and lease ends.
                    await self._db.sync_clock()
            except Exception as exc:
                if outage.failed(exc):
                    self._down()
                else:
                    log.exception("housekeeping failed; trying again next interval")
            else:
                outage.ok()
                self._after_outage()
            await asyncio.sleep(self._interval)

    def _down(self) -> None:
        """The database is unavailable: an outage began, at the latest when this process last
        reached it (or, before it ever did, an interval and a wait for it ago)."""
        if self._down_since is None:
            seen_after = timedelta(seconds=self._interval + self._db.timeout)
            self._down_since = self._last_ok or self._db.clock.now() - seen_after

    def _after_outage(self) -> None:
        """A sweep (or a non-holder's clock reading) succeeded: an outage under way ended."""
        now = self._last_ok = self._db.clock.now()
        if self._down_since is not None:
            self._outages.append((self._down_since, now, now + self._lease))
            self._down_since = None
        self._outages = [o for o in self._outages if o[2] > now]

    def _held(self) -> list[tuple[datetime, datetime]]:
        """When the leases that ended stay: during the outages that ended within a lease
        time, and the one under way (the sweep that ends it is the first to reach the
        database)."""
        held = [(start, end) for start, end, _ in self._outages]
        if self._down_since is not None:
            held.append((self._down_since, self._db.clock.now()))
        return held

    async def _every(self, job: Callable[[], Awaitable[None]]) -> None:
        outage = OutageLog(log, f"scheduled job {getattr(job, '__qualname__', job)}")
        while True:
            try:
                if await self._lock.hold():
                    await job()
            except Exception as exc:
                if not outage.failed(exc):
                    log.exception("scheduled job failed; trying again next interval")
            else:
                outage.ok()
            await asyncio.sleep(self._interval)
