"""The database locked (SQLite: another process holds the write lock) or unreachable
(PostgreSQL behind a proxy that is cut) during triggers: the caller gets a 503 problem with
`Retry-After` within the database timeout, never a 201 for an event that was not stored, and
once the database is back the engine carries on by itself: later triggers are accepted and
every accepted event is delivered."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import RunningServer, settings_for
from fault_support import TcpProxy
from helpers import live_event, wait_status, wait_until
from txmsg.testing import FakeSMTPServer

TIMEOUT = 0.5  # TXMSG_DATABASE_TIMEOUT_SECONDS of the server under test
BODY = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}

Outage = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


@asynccontextmanager
async def _database(database_url: str) -> AsyncIterator[tuple[str, Outage]]:
    """The URL the server uses, and (start, end) of an outage of that database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder: list[sqlite3.Connection] = []

        async def lock() -> None:
            conn = sqlite3.connect(str(url.database), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
            holder.append(conn)

        async def unlock() -> None:
            holder.pop().execute("ROLLBACK")

        yield database_url, (lock, unlock)
        return
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.restore()
    try:
        yield url.set(port=proxy.port).render_as_string(False), (proxy.cut, proxy.restore)
    finally:
        await proxy.cut()


async def _post(client: httpx.AsyncClient, event_id: str) -> httpx.Response:
    return await client.post(f"/rest/mc/{event_id}", json=BODY)


async def test_triggers_during_a_database_outage_get_503_and_the_engine_recovers(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    async with _database(database_url) as (url, (start_outage, end_outage)):
        settings = settings_for(url, data_dir, database_timeout_seconds=TIMEOUT)
        async with RunningServer(settings) as server:
            admin = server.admin
            event_id = await live_event(admin, smtp)
            accepted = [(await _post(admin, event_id)).json()]
            await wait_status(admin, accepted[0]["href"], "processed")

            await start_outage()
            began = time.monotonic()
            answers = await asyncio.gather(*(_post(admin, event_id) for _ in range(5)))
            waited = time.monotonic() - began
            for r in answers:
                assert r.status_code == 503, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                assert int(r.headers["retry-after"]) > 0
                assert "PKey" not in r.text
            # Answered within the database timeout (generous margin for a loaded machine).
            assert waited < TIMEOUT * 2 + 5, waited
            await end_outage()

            # Back: a client retrying after Retry-After is accepted (the first call may still
            # meet a connection the outage broke), and the engine sends without a restart.
            for _ in range(20):
                r = await _post(admin, event_id)
                if r.status_code == 201:
                    break
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.1)
            assert r.status_code == 201, r.text
            accepted.append(r.json())
            for event in accepted:
                await wait_status(admin, event["href"], "processed", timeout=20)
            # Exactly the accepted events were stored and sent: none of the refused ones.
            await asyncio.sleep(0.3)
            assert len(smtp.messages) == len(accepted)
            sent = {m.message["Subject"] for m in smtp.messages}
            assert sent == {"Hello Ada"}


def _recording_failed(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether the dispatcher logged that an attempt to record an outcome failed."""
    return any(
        r.name == "txmsg.engine.dispatcher"
        and r.getMessage().startswith("recording the outcome of event")
        for r in caplog.records
    )


async def test_an_outcome_that_meets_an_outage_is_recorded_after_it_not_sent_again(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The send is made, then the database is unavailable when its outcome is recorded: the
    dispatcher records it again while the lease holds (it used to leave the event to be
    claimed again after its lease, and sent twice).

    The outage ends only once an attempt to record the outcome has failed. A fixed outage
    (0.7 s) did not ensure that on SQLite: there every write waits up to the database timeout
    for the lock, queued on the one writer thread behind the others waiting for it too (the
    scheduler's, the webhook sender's, the dispatcher's claims), so the outcome's attempt
    often began late enough to take the lock once the outage had ended, and the test passed
    without any recording again. For the same reason the lease is long: on SQLite the first
    attempt may fail a few timeouts after the send (3.5 s measured); a lapsed lease is not
    recorded again (the event is the next claim's), by design."""
    caplog.set_level(logging.WARNING, logger="txmsg.engine.dispatcher")
    lease = 8.0  # the send (0.5 s), the outage until an attempt failed, recording after it
    async with _database(database_url) as (url, (start_outage, end_outage)):
        settings = settings_for(
            url, data_dir, database_timeout_seconds=TIMEOUT, lease=timedelta(seconds=lease)
        )
        async with RunningServer(settings) as server:
            admin = server.admin
            event_id = await live_event(admin, smtp)
            smtp.delay = 0.5  # the send is under way when the outage begins
            accepted = (await _post(admin, event_id)).json()
            await wait_until(lambda: smtp.connections_opened > 0, what="the send under way")
            await start_outage()
            await smtp.wait_for(1)  # the send ends: its outcome meets the outage
            await wait_until(
                lambda: _recording_failed(caplog), what="an attempt to record the outcome failed"
            )
            await end_outage()
            # Not recorded again, it would stay `processing` until its lease lapsed, then be
            # claimed again and sent twice before it became `processed`.
            await wait_status(admin, accepted["href"], "processed", timeout=lease + 10)
            # `processed` is final: no claim takes the event again (only an expired lease of
            # an event still `processing` puts it back in the queue).
            await asyncio.sleep(0.3)
            assert len(smtp.messages) == 1
