"""The database locked (SQLite: another process holds the write lock) or unreachable
(PostgreSQL behind a proxy that is cut) during triggers: the caller gets a 503 problem with
`Retry-After` within the database timeout, never a 201 for an event that was not stored, and
once the database is back the engine carries on by itself: later triggers are accepted and
every accepted event is delivered."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import ADMIN_KEY, PG_DSN, RunningServer, settings_for
from fault_support import TcpProxy
from helpers import free_ports, live_event, wait_status, wait_until
from txmsg.api.ops_port import OpsAddress
from txmsg.app import create_app
from txmsg.testing import FakeSMTPServer
from txmsg.testing.http import LoopServer

# TXMSG_DATABASE_TIMEOUT_SECONDS of the server under test: on PostgreSQL it bounds each
# statement of a write cycle too, so not so short that a slow commit on a loaded machine
# would be an outage.
TIMEOUT = 1.0
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


async def _accepted_once_back(
    admin: httpx.AsyncClient, event_id: str, tries: int
) -> dict[str, Any]:
    """A trigger retried after the outage (503s meanwhile, as a client honouring Retry-After
    would) until it is accepted: its 201's body."""
    for _ in range(tries):
        r = await _post(admin, event_id)
        if r.status_code == 201:
            return r.json()
        assert r.status_code == 503, r.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"no 201 after {tries} tries: {r.status_code} {r.text}")


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
            # Answered within the database timeout: on SQLite the writes waiting for the lock
            # take turns on the one writer thread (the engine's own ones too), each waiting
            # the timeout at most; a generous margin for a loaded machine.
            assert waited < TIMEOUT * 4 + 5, waited
            await end_outage()

            # Back: a client retrying after Retry-After is accepted (the first call may still
            # meet a connection the outage broke), and the engine sends without a restart.
            accepted.append(await _accepted_once_back(admin, event_id, 20))
            for event in accepted:
                await wait_status(admin, event["href"], "processed", timeout=20)
            # Exactly the accepted events were stored and sent: none of the refused ones.
            await asyncio.sleep(0.3)
            assert len(smtp.messages) == len(accepted)
            sent = {m.message["Subject"] for m in smtp.messages}
            assert sent == {"Hello Ada"}


async def test_a_database_that_stops_answering_is_an_outage_within_the_timeout(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """PostgreSQL stops answering on connections that stay open (a cut that drops packets, a
    server that hangs): triggers are answered 503 within the database timeout, not held until
    the kernel gives up on the socket (they waited 150 s behind such a proxy), and once it
    answers again the engine carries on by itself. (SQLite has no server: its outage is its
    lock, the test above.)"""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.restore()
    proxied = url.set(port=proxy.port).render_as_string(False)
    settings = settings_for(proxied, data_dir, database_timeout_seconds=TIMEOUT)
    async with RunningServer(settings) as server:
        try:
            admin = server.admin
            event_id = await live_event(admin, smtp)
            accepted = [(await _post(admin, event_id)).json()]
            await wait_status(admin, accepted[0]["href"], "processed")

            await proxy.silence()
            began = time.monotonic()
            # The statement's timeout, then its cancel's at most (a loaded machine's margin).
            async with asyncio.timeout(TIMEOUT * 2 + 5):
                answers = await asyncio.gather(*(_post(admin, event_id) for _ in range(5)))
            waited = time.monotonic() - began
            assert [r.status_code for r in answers] == [503] * 5, [r.text for r in answers]
            assert all(int(r.headers["retry-after"]) > 0 for r in answers)
            assert waited < TIMEOUT * 2 + 5, waited
            await proxy.speak()

            accepted.append(await _accepted_once_back(admin, event_id, 40))
            for event in accepted:
                await wait_status(admin, event["href"], "processed", timeout=20)
            await asyncio.sleep(0.3)
            assert len(smtp.messages) == len(accepted)
        finally:
            await proxy.cut()  # before the server stops: connections still waiting fail


test_a_database_that_stops_answering_is_an_outage_within_the_timeout.postgresql_only = True  # type: ignore[attr-defined]


def _recording_failed(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether the dispatcher logged that an attempt to record an outcome failed."""
    return any(
        r.name == "txmsg.engine.dispatcher"
        and r.getMessage().startswith("recording the outcome of event")
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("lease", "outlasting"), [(8.0, False), (1.5, True)], ids=["within-lease", "past-lease"]
)
async def test_an_outcome_that_meets_an_outage_is_recorded_after_it_not_sent_again(
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    caplog: pytest.LogCaptureFixture,
    lease: float,
    outlasting: bool,
) -> None:
    """The send is made, then the database is unavailable when its outcome is recorded: the
    dispatcher records it again while the lease holds (it used to leave the event to be
    claimed again after its lease, and sent twice).

    The outage ends only once an attempt to record the outcome has failed. A fixed outage
    (0.7 s) did not ensure that on SQLite: there every write waits up to the database timeout
    for the lock, queued on the one writer thread behind the others waiting for it too (the
    scheduler's, the webhook sender's, the dispatcher's claims), so the outcome's attempt
    often began late enough to take the lock once the outage had ended, and the test passed
    without any recording again. For the same reason the lease is long when the outage is
    to end within it: on SQLite the first attempt may fail a few timeouts after the send
    (3.5 s measured).

    `outlasting`: the outage outlasts the lease. No process could sweep the lease, so it is
    still the event's, and once the database is back the outcome is recorded and the event
    is not sent again. The dispatcher used to give the outcome up at the lease's end, and the
    process's own sweep released the event on the way back: sent twice (a probe: 128 of 600
    events, each worker's 64 in flight)."""
    caplog.set_level(logging.WARNING, logger="txmsg.engine.dispatcher")
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
            if outlasting:
                await asyncio.sleep(lease + 1)  # the lease ends during the outage
            await end_outage()
            # Not recorded again, it would stay `processing` until its lease lapsed, then be
            # claimed again and sent twice before it became `processed`.
            await wait_status(admin, accepted["href"], "processed", timeout=lease + 15)
            # `processed` is final: no claim takes the event again (only an expired lease of
            # an event still `processing` puts it back in the queue).
            await asyncio.sleep(lease + 0.5 if outlasting else 0.3)
            assert len(smtp.messages) == 1


@asynccontextmanager
async def _renamed_away(database_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The database renamed (its connections ended first), as an operator's `ALTER DATABASE
    … RENAME` would: the engine's connections fail with "database does not exist" (asyncpg's
    `InvalidCatalogNameError`) until it is renamed back by the function yielded (or at exit)."""
    name = make_url(database_url).database
    assert name is not None
    away = "outage_" + secrets.token_hex(6)
    admin = await asyncpg.connect(PG_DSN)
    try:
        for _ in range(200):  # the engine reconnects at once: end its sessions, then rename
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            try:
                await admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{away}"')
                break
            except asyncpg.ObjectInUseError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("the database could not be renamed")
        renamed = [True]

        async def back() -> None:
            if renamed.pop():
                await admin.execute(f'ALTER DATABASE "{away}" RENAME TO "{name}"')
            renamed.append(False)

        try:
            yield back
        finally:
            await back()
    finally:
        await admin.close()


def _warnings(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """What the engine and the server logged at WARNING and above."""
    return [
        r
        for r in records
        if r.levelno >= logging.WARNING and r.name.startswith(("txmsg", "uvicorn"))
    ]


async def _scrape(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_renamed_database_is_an_outage_metrics_answer_and_the_log_stays_short(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL saying "database does not exist" (renamed under a running engine) is an
    outage like a refused connection: triggers get 503 + Retry-After (they got 500), /metrics
    answers on the ops port and the API (the ops port dropped the connection), with
    `txmsg_database_up 0` and no queue depth, and the outage is told in a few lines without a
    traceback (there was one per request and per loop and try); all of it ends by itself once
    the database has its name back."""
    caplog.set_level(logging.INFO)
    first = free_ports(2)
    ops = OpsAddress("127.0.0.1", first)
    settings = settings_for(database_url, data_dir, database_timeout_seconds=TIMEOUT)
    app = create_app(settings, ops_port=ops)
    async with LoopServer(app, lifespan="on", port=first + 1) as server:
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as admin:
            event_id = await live_event(admin, smtp)
            accepted = [(await _post(admin, event_id)).json()]
            await wait_status(admin, accepted[0]["href"], "processed")
            assert "txmsg_queue_depth{" in (await _scrape(ops.port)).text

            before = len(caplog.records)
            async with _renamed_away(database_url) as rename_back:
                for _ in range(3):
                    answers = await asyncio.gather(*(_post(admin, event_id) for _ in range(5)))
                    for r in answers:
                        assert r.status_code == 503, r.text
                        assert int(r.headers["retry-after"]) > 0
                    await asyncio.sleep(0.5)  # the background loops try again meanwhile
                for scrape in (await _scrape(ops.port), await admin.get("/metrics")):
                    assert scrape.status_code == 200, scrape.text
                    assert "txmsg_database_up 0.0" in scrape.text
                    assert "txmsg_queue_depth{" not in scrape.text
                    assert "txmsg_sends_total" in scrape.text  # the process's own figures
                during = _warnings(caplog.records[before:])
                await rename_back()

            # One line per component as it begins (no traceback), not one per try or request.
            assert [r for r in during if r.exc_info] == [], [r.getMessage() for r in during]
            assert len(during) <= 12, [r.getMessage() for r in during]
            assert any("does not exist" in r.getMessage() for r in during)

            accepted.append(await _accepted_once_back(admin, event_id, 50))
            for event in accepted:
                await wait_status(admin, event["href"], "processed", timeout=20)
            scrape = await _scrape(ops.port)
            assert "txmsg_database_up 1.0" in scrape.text
            assert "txmsg_queue_depth{" in scrape.text
            await wait_until(
                lambda: any("the database is back" in r.getMessage() for r in caplog.records),
                what="the end of the outage told",
            )


test_a_renamed_database_is_an_outage_metrics_answer_and_the_log_stays_short.postgresql_only = (  # type: ignore[attr-defined]
    True
)


async def test_an_outage_is_told_in_a_few_lines_without_tracebacks(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each 503 logged a traceback ("Exception in ASGI application"), and each background loop
    one per try: a 14 s outage wrote a megabyte. Now each component tells the outage once as
    it begins (WARNING, no traceback) and once as it ends (INFO)."""
    caplog.set_level(logging.INFO)
    async with _database(database_url) as (url, (start_outage, end_outage)):
        settings = settings_for(url, data_dir, database_timeout_seconds=TIMEOUT)
        async with RunningServer(settings) as server:
            admin = server.admin
            event_id = await live_event(admin, smtp)
            accepted = [(await _post(admin, event_id)).json()]
            await wait_status(admin, accepted[0]["href"], "processed")

            before = len(caplog.records)
            await start_outage()
            for _ in range(4):
                answers = await asyncio.gather(*(_post(admin, event_id) for _ in range(5)))
                assert [r.status_code for r in answers] == [503] * 5
                await asyncio.sleep(0.3)
            during = _warnings(caplog.records[before:])
            await end_outage()

            assert [r for r in during if r.exc_info] == [], [r.getMessage() for r in during]
            assert len(during) <= 12, [r.getMessage() for r in during]
            for _ in range(50):
                r = await _post(admin, event_id)
                if r.status_code == 201:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 201, r.text
            await wait_status(admin, r.json()["href"], "processed", timeout=20)
            ended = [r.getMessage() for r in caplog.records[before:] if r.levelno == logging.INFO]
            assert any("answering requests (503): the database is back" in m for m in ended)
