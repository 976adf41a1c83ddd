"""Parts of an engine in the test's own loop: the app in the API role with an admin client,
and the sending half (a writer and a dispatcher sharing a lease book, started and stopped
as `build_engine` starts and stops them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from conftest import ADMIN_KEY, settings_for
from txmsg.app import Role, create_app
from txmsg.core.statuses import EventStatus
from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.events import get_event

FINAL = {s.value for s in EventStatus} - {EventStatus.PENDING.value, EventStatus.PROCESSING.value}


@contextlib.asynccontextmanager
async def api_only(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app in the API role (`Role.API`), in this loop, and an admin client for it."""
    app = create_app(settings_for(database_url, data_dir), role=Role.API)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://txmsg", headers=headers
        ) as admin:
            yield admin


@contextlib.asynccontextmanager
async def sending(
    db: Database, book: LeaseBook, settings: DispatcherSettings | None = None
) -> AsyncIterator[Writer]:
    """A writer and a dispatcher on `db` and `book` (a poll of 50 ms and no route cache unless
    `settings` say otherwise); `db` is disposed of once both stopped."""
    writer = Writer(db, book)
    settings = settings or DispatcherSettings(poll_interval=0.05, route_cache_seconds=0.0)
    dispatcher = Dispatcher(db, settings, book, writer)
    writer.start()
    dispatcher.start()
    try:
        yield writer
    finally:
        await dispatcher.stop()
        await writer.stop()
        await db.dispose()


async def final_row(db: Database, event_id: str, pkey: str, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            row = await db.read(get_event, event_id, pkey)
            if row is not None and row.status in FINAL:
                return row
            await asyncio.sleep(0.02)
