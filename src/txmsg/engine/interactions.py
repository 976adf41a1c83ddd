"""The interaction-data lifecycle (after Braze's "messaging interaction data").

The delivery-log rows of an event configuration that is paused or unpublished and has been
inactive (no send, no restore) for the inactivity period move to Parquet files in the data
directory, then leave the live database. They are never deleted: a restore brings them back,
and they expire again after another inactive period. Day aggregates are not touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from txmsg.core.timeutil import utcnow
from txmsg.store import archive_files, archives
from txmsg.store.archives import Restored
from txmsg.store.db import Database
from txmsg.store.event_configs import require as require_event_config

log = logging.getLogger(__name__)

ROWS_PER_FILE = 20_000
CHECK_EVERY = timedelta(minutes=10)


class InteractionLifecycle:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        inactivity: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._data_dir = data_dir
        self._inactivity = inactivity
        self.clock = clock  # injectable: tests move time forward
        self._next_check: datetime | None = None
        self._lock = asyncio.Lock()  # one expiry or restore at a time in this process

    async def run_if_due(self) -> int:
        """Called by the housekeeping scheduler: an expiry pass every CHECK_EVERY."""
        now = self.clock()
        if self._next_check is not None and now < self._next_check:
            return 0
        self._next_check = now + CHECK_EVERY
        return await self.expire_inactive()

    async def scheduled(self) -> None:
        """The scheduler's periodic job."""
        await self.run_if_due()

    async def expire_inactive(self) -> int:
        """Archive the interaction data of every inactive event; returns the rows moved."""
        moved = 0
        for candidate in await self._db.read(archives.inactive_candidates):
            now = self.clock()
            last = await self._db.read(
                archives.last_activity, candidate.event_id, candidate.created_at
            )
            if now - last < self._inactivity:
                continue
            if not await self._db.read(archives.has_interactions, candidate.event_id):
                continue
            moved += await self._expire(candidate.event_id)
        return moved

    async def _expire(self, event_id: str) -> int:
        moved = 0
        async with self._lock:
            after = 0
            while True:
                rows = await self._db.read(archives.read_chunk, event_id, after, ROWS_PER_FILE)
                if not rows:
                    break
                now = self.clock()
                path = archive_files.relative_path(event_id, now)
                await asyncio.to_thread(archive_files.write, self._data_dir, path, rows)
                ids = [r["id"] for r in rows]
                try:
                    await self._db.write(archives.archive_in, event_id, path, ids, now)
                except Exception:
                    await asyncio.to_thread(archive_files.remove_if_present, self._data_dir, path)
                    raise
                moved += len(rows)
                after = ids[-1]
        log.info("%d interaction rows of %s expired to Parquet", moved, event_id)
        return moved

    async def restore(self, event_id: str) -> Restored:
        """Bring an event's archived interaction data back into the live database."""
        await self._db.read(require_event_config, event_id)
        files = rows = 0
        async with self._lock:
            for archive in await self._db.read(archives.unrestored, event_id):
                data = await asyncio.to_thread(archive_files.read, self._data_dir, archive.path)
                if await self._db.write(archives.restore_in, archive.id, data, self.clock()):
                    files += 1
                    rows += len(data)
        if files:
            log.info("%d interaction rows of %s restored from %d files", rows, event_id, files)
        return Restored(event_id, files, rows)
