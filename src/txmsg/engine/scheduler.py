"""Periodic housekeeping: expired leases, expired events, idempotency keys, paused events,
fatigue reservations, profiles of scheduled profile-based events; and the periodic jobs
(export flows and purges, the interaction-data lifecycle), each in a loop of its own.

However many workers share the database, one process at a time runs them: each loop runs its
job only while this process holds the scheduler lock (`store/scheduler_lock.py`), and another
takes it over when its holder stops, dies or stops answering. Lease ends are compared against
the database's clock, read in the housekeeping's own transaction (by the others, at the same
interval). The holder's sweep leaves its own process's leases alone: a lease ends for want of
a live worker, and this one is alive. After a database outage, for one lease time, it releases
only the leases that ended before the outage began: the others ended because no process could
reach the database to renew them, and their workers, alive, record the sends they made
meanwhile (released first, those events would be sent a second time)."""

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
    ended_before: datetime | None = None,
) -> tuple[int, int]:
    now = clock.sync_in(conn)  # the database's time: lease ends are compared against it
    released = leases.release_expired_in(conn, now, own, ended_before)
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
        # After an outage: when it began (the database's time, as this process estimated it)
        # and until when only leases that ended before it are released.
        self._lease = lease
        self._outage_began: datetime | None = None
        self._grace_until: datetime | None = None
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
        released, expired = await self._db.write(
            _housekeeping, self._db.clock, own, self._outage_began
        )
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
                    if self._outage_began is None:
                        # Seen late: this sweep's interval, and its wait for the database.
                        seen_after = timedelta(seconds=self._interval + self._db.timeout)
                        self._outage_began = self._db.clock.now() - seen_after
                    self._grace_until = None  # counted from the end of the outage
                else:
                    log.exception("housekeeping failed; trying again next interval")
            else:
                outage.ok()
                self._after_outage()
            await asyncio.sleep(self._interval)

    def _after_outage(self) -> None:
        """A sweep (or a non-holder's clock reading) succeeded: one lease time after the first
        since an outage, sweeps release every lapsed lease again."""
        if self._outage_began is None:
            return
        now = self._db.clock.now()
        if self._grace_until is None:
            self._grace_until = now + self._lease
        elif now >= self._grace_until:
            self._outage_began = self._grace_until = None

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
