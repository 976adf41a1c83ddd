"""Periodic housekeeping: expired leases, expired events, idempotency keys, paused events,
fatigue reservations, profiles of scheduled profile-based events; and the periodic jobs
(export flows and purges, the interaction-data lifecycle), each in a loop of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.engine import Connection

from txmsg.store import fatigue, report_counts
from txmsg.store import webhook_outbox as outbox
from txmsg.store.db import Database
from txmsg.store.queue import housekeeping, leases
from txmsg.store.targeting import pretarget_scheduled

log = logging.getLogger(__name__)


def _housekeeping(conn: Connection) -> tuple[int, int]:
    released = leases.release_expired_in(conn)
    outbox.queue_status_changes(conn, released.announced)
    resumed = housekeeping.resume_paused_of_live_events(conn)
    outbox.queue_status_changes(conn, resumed.announced)
    expired = housekeeping.expire_queued(conn)
    report_counts.add(conn, report_counts.of_changes(expired.changes))
    outbox.queue_status_changes(conn, expired.announced)
    housekeeping.purge_idempotency_keys(conn)
    fatigue.purge_reservations(conn)
    pretarget_scheduled(conn)
    return released.count + resumed.count, expired.count


class Scheduler:
    def __init__(
        self,
        db: Database,
        interval: float,
        on_released: Callable[[], None],
        jobs: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._db = db
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

    async def run_once(self) -> None:
        released, expired = await self._db.write(_housekeeping)
        await self._db.checkpoint()
        if released:
            log.info("%d events back in the queue", released)
            self._on_released()
        if expired:
            log.info("%d queued events expired (tooOld)", expired)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping failed; trying again next interval")
            await asyncio.sleep(self._interval)

    async def _every(self, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await job()
            except Exception:
                log.exception("scheduled job failed; trying again next interval")
            await asyncio.sleep(self._interval)
