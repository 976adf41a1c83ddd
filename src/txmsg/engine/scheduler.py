"""Periodic housekeeping: expired leases, expired events, idempotency keys, paused events,
fatigue reservations, profiles of scheduled profile-based events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.engine import Connection

from txmsg.store import events as event_store
from txmsg.store import fatigue
from txmsg.store.db import Database
from txmsg.store.routing import release_paused_of_live_events
from txmsg.store.targeting import pretarget_scheduled

log = logging.getLogger(__name__)


def _housekeeping(conn: Connection) -> tuple[int, int]:
    released = event_store.release_expired_leases(conn)
    released += release_paused_of_live_events(conn)
    expired = event_store.expire_queued(conn)
    event_store.purge_idempotency_keys(conn)
    fatigue.purge_reservations(conn)
    pretarget_scheduled(conn)
    return released, expired


class Scheduler:
    def __init__(self, db: Database, interval: float, on_released: Callable[[], None]) -> None:
        self._db = db
        self._interval = interval
        self._on_released = on_released
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="txmsg-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> None:
        released, expired = await self._db.write(_housekeeping)
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
