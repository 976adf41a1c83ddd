"""Inputs that once produced a 500, a lost batch or a leak: each answers cleanly now."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest

from helpers import live_event, nested_lists, publish_message, queued_event, trigger, wait_status
from txmsg.core.queue import PRIORITY_TRANSACTIONAL, NewEvent
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import WAL_AUTOCHECKPOINT_PAGES, Database
from txmsg.store.events import get_event
from txmsg.store.queue import claims


async def test_unstorable_ctx_is_a_400_and_harms_no_other_trigger(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    good = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    deep = {"email": "ada@example.org", "ctx": {"firstName": "Ada", "x": nested_lists(300)}}
    nul = {"email": "ada@example.org", "ctx": {"firstName": "A\u0000da"}}
    answers = await asyncio.gather(
        *(server.admin.post(f"/rest/mc/{event_id}", json=b) for b in [good, deep, good, nul] * 5)
    )
    codes = [a.status_code for a in answers]
    assert codes == [201, 400, 201, 400] * 5
    assert answers[1].json()["errors"][0] == {
        "field": "ctx",
        "pointer": "/ctx",
        "detail": "is nested too deeply",
    }
    assert answers[3].json()["errors"][0] == {
        "field": "ctx.firstName",
        "pointer": "/ctx/firstName",
        "detail": "must not contain NUL characters (U+0000)",
    }
    # Deeper, in a list, or in a key (with a dot in it): named where it is.
    nested = {"email": "a@example.org", "ctx": {"firstName": "A", "o": {"l": ["x", "y\u0000"]}}}
    r = await server.admin.post(f"/rest/mc/{event_id}", json=nested)
    error = r.json()["errors"][0]
    assert (error["field"], error["pointer"]) == ("ctx.o.l[1]", "/ctx/o/l/1")
    keyed = {"email": "a@example.org", "ctx": {"firstName": "A", "a.b": {"k\u0000": 1}}}
    r = await server.admin.post(f"/rest/mc/{event_id}", json=keyed)
    assert r.json()["errors"][0]["pointer"] == "/ctx/a.b/k\u0000"
    await smtp.wait_for(10)


async def test_a_bad_row_fails_alone_in_the_write_funnel(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    writer = Writer(db, LeaseBook(max_in_flight=64, lease=timedelta(seconds=60)))
    writer.start()
    try:
        now = utcnow()

        def new(ctx: dict) -> NewEvent:
            return queued_event("EVTx", priority=PRIORITY_TRANSACTIONAL, ctx=ctx, now=now)

        # Unserialisable at the store (the API refuses it earlier): it must fail alone.
        items = [new({"n": i}) for i in range(5)] + [new({"x": nested_lists(300)})]
        results = await asyncio.gather(*(writer.enqueue(i) for i in items), return_exceptions=True)
        assert [getattr(r, "kind", None) for r in results[:5]] == ["created"] * 5
        assert isinstance(results[5], Exception)
        claimed = (await db.write(claims.claim_in, 10, timedelta(seconds=30))).events
        assert {c.pkey for c in claimed} == {i.pkey for i in items[:5]}
    finally:
        await writer.stop()
        await db.dispose()


async def test_odd_headers_paths_and_dates_are_not_500s(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.get("/api/v1/keys", headers={"Authorization": b"Bearer caf\xe9"})
    assert r.status_code == 401
    for path in (
        f"/rest/mc/{event_id}%00x",
        "/api/v1/event-configs/a%00b",
        "/api/v1/channel-configs/m%00",
    ):
        r = await server.admin.get(path)
        assert r.status_code in (404, 405), (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    r = await server.admin.get(f"/rest/mc/{event_id}/AB%00C")
    assert r.status_code == 404
    for field, value in (
        ("scheduled", "9999-12-31T12:00:00Z"),
        ("expiration", "0001-01-01T00:00:00+01:00"),
        ("scheduled", "1999-01-01T00:00:00Z"),
    ):
        r = await server.admin.post(
            f"/rest/mc/{event_id}",
            json={"email": "ada@example.org", "ctx": {"firstName": "Ada"}, field: value},
        )
        assert r.status_code == 400, (field, value, r.text)
        assert r.json()["errors"][0]["field"] == field
    r = await server.admin.patch(
        "/api/v1/channel-configs/mail", json={"smtp": {"password": "Top\u0000Secret"}}
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "smtp.password"


async def test_recursive_templates_are_refused_not_500(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={"subject": "x", "text": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"},
    )
    assert r.status_code == 422, r.text
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={"subject": "x", "text": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"},
    )
    assert r.status_code == 200
    r = await server.admin.post(f"/api/v1/messages/{event_id}/preview", json={})
    assert r.status_code == 422
    assert "recurses" in r.json()["detail"]


async def test_a_template_recursing_at_send_time_is_routing_failed(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    await publish_message(
        server.admin,
        event_id,
        subject="x",
        text="{% macro m(n) %}{{ m(n) if ctx.firstName == 'loop' else n }}{% endmacro %}{{ m(1) }}",
        html="",
    )
    accepted = await trigger(
        server.admin, event_id, {"email": "a@example.org", "ctx": {"firstName": "loop"}}
    )
    done = await wait_status(server.admin, accepted["href"], "routingFailed")
    assert "recurses" in done["reason"]


def test_retry_delay_never_overflows() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=300)
    assert 150 <= policy.delay(5000) <= 300
    assert 0.5 <= policy.delay(1) <= 1


async def test_errors_hide_bound_parameters(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(database_url)
    await db.migrate()
    import sqlalchemy as sa

    def fail(conn) -> None:  # a constraint violation carrying a secret as a parameter
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (id, key_hash, role, label, created_at) "
                "VALUES (:id, :h, 'admin', :label, NULL)"
            ),
            {"id": "k", "h": "h", "label": "SECRET-VALUE"},
        )

    caplog.set_level(logging.DEBUG)
    with pytest.raises(sa.exc.IntegrityError) as err:
        await db.write(fail)
    assert "SECRET-VALUE" not in str(err.value)
    await db.dispose()


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(d.migrate() for d in databases))
    finally:
        for d in databases:
            await d.dispose()


async def test_a_bad_log_entry_fails_alone_not_the_outcomes(database_url: str) -> None:
    """A delivery-log entry the store refuses, written in the same cycle as a send's outcome,
    fails its own submitter only: the outcome and the other entries are recorded."""
    from txmsg.core.delivery import Interaction, LogEntry
    from txmsg.core.queue import Outcome
    from txmsg.store import delivery_log

    db = Database(database_url)
    await db.migrate()
    writer = Writer(db, LeaseBook(max_in_flight=64, lease=timedelta(seconds=60)))
    writer.start()
    try:
        now = utcnow()
        event = queued_event("EVTx", priority=PRIORITY_TRANSACTIONAL, now=now)
        pkey = event.pkey
        await writer.enqueue(event)
        [claimed] = (await db.write(claims.claim_in, 10, timedelta(seconds=30))).events
        outcome = Outcome(claimed.id, claimed.lease_token, EventStatus.PROCESSED, sent_at=now)
        good = LogEntry(pkey, "EVTx", Interaction.DELIVERED, now, {"MessageSid": "SM" + "1" * 32})
        bad = LogEntry(pkey, "EVTx", Interaction.FAILED, None, {"MessageSid": "SM" + "2" * 32})  # type: ignore[arg-type]
        results = await asyncio.gather(
            writer.record(outcome),
            writer.append_log(bad),
            writer.append_log(good),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None, results
        assert isinstance(results[1], Exception)
        row = await db.read(get_event, "EVTx", pkey)
        assert row.status == "processed"
        entries = await db.read(delivery_log.for_event, pkey)
        assert [e.kind for e in entries] == [Interaction.DELIVERED]
    finally:
        await writer.stop()
        await db.dispose()


async def test_sqlite_checkpoints_run_off_the_write_path(tmp_path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    try:
        limit = await db.read(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        assert limit == WAL_AUTOCHECKPOINT_PAGES  # inline checkpoints: a rare safety net
        await db.checkpoint()
        before = path.stat().st_size
        # Pages a migration freed (a table rebuilt) are reused before the file grows.
        free = await db.read(
            lambda c: (
                c.exec_driver_sql("PRAGMA freelist_count").scalar()
                * c.exec_driver_sql("PRAGMA page_size").scalar()
            )
        )
        await db.write(lambda c: c.exec_driver_sql("CREATE TABLE t (x TEXT)"))
        for _ in range(20):
            await db.write(lambda c: c.exec_driver_sql("INSERT INTO t VALUES (?)", ("x" * 4000,)))
        assert path.stat().st_size == before  # committed to the WAL only
        await db.checkpoint()
        assert path.stat().st_size >= before + 20 * 4000 - free  # copied back into the database
    finally:
        await db.dispose()


async def test_a_problem_repeats_what_it_is_about_within_bounds(server, smtp) -> None:
    """An unknown field named by a megabyte, a date of a megabyte, a PKey of 30 kB: the answer
    names them, cut, and stays far smaller than the request."""
    event_id = await live_event(server.admin, smtp)
    admin = server.admin
    name = "k" * 1_000_000
    r = await admin.post(f"/rest/mc/{event_id}", json={"email": "a@example.org", name: 1})
    assert r.status_code == 400 and len(r.content) < 2_000, len(r.content)
    [error] = r.json()["errors"]
    assert error["field"].startswith("kkk") and error["field"].endswith("…")
    assert len(error["field"]) == len(error["pointer"]) == 200
    assert len(r.json()["detail"]) == 500
    body = {"email": "a@example.org", "ctx": {"firstName": "A"}, "scheduled": "x" * 1_000_000}
    r = await admin.post(f"/rest/mc/{event_id}", json=body)
    assert r.status_code == 400 and len(r.content) < 2_000, len(r.content)
    assert r.json()["errors"][0]["field"] == "scheduled"
    r = await admin.get(f"/rest/mc/{event_id}/{'P' * 30_000}")
    assert r.status_code == 404 and len(r.content) < 1_000, len(r.content)
    items = [{"email": "a@example.org", "k" * 990: 1} for _ in range(1000)]
    r = await admin.post(f"/rest/mc/{event_id}/batch", json={"events": items})
    assert r.status_code == 422 or r.status_code == 207, r.text[:200]
    assert len(r.content) < 1.5 * len(json.dumps({"events": items})), len(r.content)


async def _answer_to_a_trickle(server, path: str, body: bytes, parts: list[bytes]) -> str:
    """The status line the server answers a request whose body comes in `parts`, 0.3 s
    apart, announcing `body`'s length."""
    from conftest import ADMIN_KEY

    port = int(server.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode())
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.3)
        line = await asyncio.wait_for(reader.readline(), 10)
        return line.decode().strip()
    finally:
        writer.close()


@pytest.mark.server_settings(body_timeout_seconds=1.0)
async def test_a_body_that_does_not_arrive_in_time_is_a_408(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    body = json.dumps({"email": "a@example.org", "ctx": {"firstName": "A"}}).encode()
    for path in (f"/rest/mc/{event_id}", "/api/v1/event-configs", "/webhooks/twilio/status"):
        started = asyncio.get_running_loop().time()
        assert await _answer_to_a_trickle(server, path, body, [body[:2]]) == (
            "HTTP/1.1 408 Request Timeout"
        ), path
        # Within the deadline and the sweep a second: not after however long the client likes.
        assert asyncio.get_running_loop().time() - started < 4, path
    # A body that takes its time, within the deadline, is taken.
    answer = await _answer_to_a_trickle(server, f"/rest/mc/{event_id}", body, [body[:5], body[5:]])
    assert answer == "HTTP/1.1 201 Created"
