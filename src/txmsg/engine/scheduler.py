"""Periodic housekeeping: expired leases, expired events, idempotency keys, paused events,
the interaction-data lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.engine import Connection

from txmsg.engine.interactions import InteractionLifecycle
from txmsg.store import events as event_store
from txmsg.store.db import Database
from txmsg.store.routing import release_paused_of_live_events

log = logging.getLogger(__name__)


def _housekeeping(conn: Connection) -> tuple[int, int]:
    released = event_store.release_expired_leases(conn)
    released += release_paused_of_live_events(conn)
    expired = event_store.expire_queued(conn)
    event_store.purge_idempotency_keys(conn)
    return released, expired


class Scheduler:
    def __init__(
        self,
        db: Database,
        interval: float,
        on_released: Callable[[], None],
        lifecycle: InteractionLifecycle | None = None,
    ) -> None:
        self._db = db
        self._lifecycle = lifecycle
        self._lifecycle_task: asyncio.Task[int] | None = None
        self._interval = interval
        self._on_released = on_released
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="txmsg-scheduler")

    async def stop(self) -> None:
        for task in (self._task, self._lifecycle_task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("the interaction-data lifecycle failed")

    async def run_once(self) -> None:
        released, expired = await self._db.write(_housekeeping)
        if released:
            log.info("%d events back in the queue", released)
            self._on_released()
        if expired:
            log.info("%d queued events expired (tooOld)", expired)
        self._start_lifecycle()

    def _start_lifecycle(self) -> None:
        """The interaction-data lifecycle runs beside the sweeps: a long expiry never holds
        back lease releases and expirations."""
        if self._lifecycle is None:
            return
        task = self._lifecycle_task
        if task is not None:
            if not task.done():
                return
            if not task.cancelled() and task.exception() is not None:
                log.error("the interaction-data lifecycle failed", exc_info=task.exception())
        self._lifecycle_task = asyncio.create_task(
            self._lifecycle.run_if_due(), name="txmsg-interactions"
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping failed; trying again next interval")
            await asyncio.sleep(self._interval)
