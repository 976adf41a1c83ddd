"""An engine's sending half, wired in the test's own loop: a writer and a dispatcher sharing
a lease book, started and stopped as `build_engine` starts and stops them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database


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
