"""Status webhooks end to end: a real receiver under uvicorn on loopback, failing (or not
answering) then answering, signatures checked with the receiver's own HMAC, every status change
and interaction announced in the shape openapi.yaml gives, sends never waiting for it, and
events without a webhook never paying for it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from jsonschema import Draft202012Validator

from conftest import RunningServer, settings_for
from helpers import (
    assert_problem,
    create_channel,
    create_event,
    live_event,
    publish_message,
    queued_event,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.queue import NewEvent
from txmsg.engine.webhooks import PER_CONFIG
from txmsg.store import delivery_log, event_configs, webhook_outbox
from txmsg.store.db import Database
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import event_webhooks
from txmsg.store.tables import webhook_outbox as webhook_outbox_table
from txmsg.testing import FakeSMTPServer
from webhook_support import SECRET, Call, Receiver, serving

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text("utf-8"))
CALL_SCHEMA = Draft202012Validator(
    {"$ref": "#/components/schemas/StatusWebhookCall", "components": SPEC["components"]}
)


async def outbox_drained(store: Database, eid: str) -> None:
    """Delivered calls leave the outbox (just after the receiver answered)."""
    for _ in range(200):
        if not await store.read(webhook_outbox.pending, eid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"calls of {eid} still in the outbox")


def verify(call: Call, secret: str) -> None:
    """The receiver's side: recompute the HMAC over `t.body` and compare in constant time."""
    parts = dict(p.split("=", 1) for p in call.headers["x-txmsg-signature"].split(","))
    assert abs(int(parts["t"]) - time.time()) < 60
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + call.body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())


def check_call(call: Call) -> dict[str, Any]:
    """A call as the receiver sees it: signed, JSON, shaped as openapi.yaml says."""
    verify(call, SECRET)
    assert call.headers["content-type"] == "application/json"
    body = call.json
    errors = [e.message for e in CALL_SCHEMA.iter_errors(body)]
    assert not errors, (body, errors)
    assert (body["status"] is None) != (body["interaction"] is None)
    return body


async def hook(admin: Any, eid: str, url: str) -> None:
    r = await admin.patch(
        f"/api/v1/event-configs/{eid}", json={"webhook": {"url": url, "secret": SECRET}}
    )
    assert r.status_code == 200, r.text


async def test_webhook_retried_until_the_receiver_answers_and_signed(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    # Set with one URL, then moved: an update without a secret keeps the stored one.
    r = await admin.patch(
        f"/api/v1/event-configs/{eid}",
        json={"webhook": {"url": "http://127.0.0.1:9/nowhere", "secret": SECRET}},
    )
    assert r.status_code == 200, r.text
    r = await admin.patch(f"/api/v1/event-configs/{eid}", json={"webhook": {"url": receiver.url}})
    assert r.json()["webhook"] == {"url": receiver.url, "secret_set": True}
    assert SECRET not in r.text
    receiver.failures = 2  # each call fails twice, then is answered

    accepted = await trigger(admin, eid)
    pkey = accepted["PKey"]
    await wait_status(admin, accepted["href"], "processed")
    opened_at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await store.write(
        delivery_log.append_in,
        [LogEntry(pkey, eid, Interaction.OPENED, opened_at, {"ua": "Mail"})],
    )
    await wait_until(lambda: len(receiver.delivered()) == 4, what="every call delivered")

    for call in receiver.calls:
        check_call(call)
    # Every call was made three times, with the same id: receivers drop duplicates with it.
    attempts = Counter(c.json["id"] for c in receiver.calls)
    assert set(attempts.values()) == {3} and len(attempts) == 4
    assert [c.answered for c in receiver.calls if c.json["id"] == min(attempts)] == [500, 500, 204]
    delivered = receiver.delivered()
    assert [(d["status"], d["interaction"]) for d in delivered] == [
        ("pending", None),  # the acceptance
        ("processing", None),  # the send starts
        ("processed", None),
        (None, "opened"),
    ]
    accepted_call, processing, processed, opened = delivered
    for d in (accepted_call, processing, processed):
        assert (d["PKey"], d["eventId"], d["reason"], d["detail"]) == (pkey, eid, None, None)
    event_date = datetime.fromisoformat(accepted["eventDate"])
    times = [datetime.fromisoformat(d["at"]) for d in (accepted_call, processing, processed)]
    assert event_date <= times[0] <= times[1] <= times[2] <= datetime.now(UTC)
    assert opened == {
        "id": opened["id"],
        "PKey": pkey,
        "eventId": eid,
        "status": None,
        "interaction": "opened",
        "at": "2026-11-23T10:00:00.000Z",
        "reason": None,
        "detail": {"ua": "Mail"},
    }
    await outbox_drained(store, eid)

    # An unpublished event's waiting triggers end `ignored`: announced too, with the reason.
    receiver.failures = 0
    await admin.post(f"/api/v1/event-configs/{eid}/pause")
    held = await trigger(admin, eid)
    await admin.post(f"/api/v1/event-configs/{eid}/unpublish")
    await wait_until(lambda: len(receiver.delivered()) == 6, what="the paused and ignored calls")
    assert receiver.statuses(held["PKey"]) == ["paused", "ignored"]
    ignored = receiver.delivered()[-1]
    assert "unpublished" in ignored["reason"]
    # Ids are never reused, even once the outbox emptied (as it did above).
    assert len({d["id"] for d in receiver.delivered()}) == 6


async def test_every_status_change_is_announced(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    await hook(admin, eid, receiver.url)

    # Paused: accepted as `paused`; one expires while waiting (housekeeping: `tooOld`).
    assert (await admin.post(f"/api/v1/event-configs/{eid}/pause")).status_code == 200
    held = await trigger(admin, eid)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = await trigger(
        admin, eid, {"email": "late@example.org", "ctx": {"firstName": "Al"}, "expiration": soon}
    )
    await wait_status(admin, expiring["href"], "tooOld")
    # Resumed: back to `pending`, then sent.
    assert (await admin.post(f"/api/v1/event-configs/{eid}/resume")).status_code == 200
    await wait_status(admin, held["href"], "processed")
    # A transient SMTP failure: `pending` again with the reason, then sent.
    smtp.fail_next(451, "try again later")
    retried = await trigger(admin, eid)
    await wait_status(admin, retried["href"], "processed")
    # A permanent one: `deliveryFailed`.
    smtp.fail_next(550, "no such user")
    failed = await trigger(admin, eid)
    await wait_status(admin, failed["href"], "deliveryFailed")

    expected = {
        held["PKey"]: ["paused", "pending", "processing", "processed"],
        expiring["PKey"]: ["paused", "tooOld"],
        retried["PKey"]: ["pending", "processing", "pending", "processing", "processed"],
        failed["PKey"]: ["pending", "processing", "deliveryFailed"],
    }
    total = sum(map(len, expected.values())) + 1  # and the bounce the 550 logged
    await wait_until(lambda: len(receiver.delivered()) == total, what="every change announced")
    for pkey, statuses in expected.items():
        assert receiver.statuses(pkey) == statuses, pkey
    for call in receiver.calls:
        check_call(call)
    by_status = {(d["PKey"], d["status"]): d for d in receiver.delivered()}
    assert by_status[(expiring["PKey"], "tooOld")]["reason"] == "expired before it could be sent"
    retry = [d for d in receiver.delivered() if d["PKey"] == retried["PKey"]][2]
    assert retry["reason"].startswith("retrying: ") and "451" in retry["reason"]
    assert "550" in by_status[(failed["PKey"], "deliveryFailed")]["reason"]
    bounce = [d for d in receiver.delivered() if d["interaction"] == "bounced"]
    assert [(b["PKey"], b["detail"]["bounce"]) for b in bounce] == [(failed["PKey"], "hard")]


async def test_a_lost_lease_is_announced(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    """An event leased by a worker that died goes back to `pending` (housekeeping), then is
    sent by this server: each change announced."""
    admin = server.admin
    eid = await live_event(admin, smtp)
    await hook(admin, eid, receiver.url)
    event = new_event(eid, "ada@example.org", announce=True)
    # Leased at insert by "another worker" that never sends it.
    _, _, leased, *_ = await store.write(
        write_cycle, CycleRequest(new=[event], free=1, lease=timedelta(milliseconds=300))
    )
    assert [e.pkey for e in leased] == [event.pkey]
    await wait_status(admin, f"/rest/mc/{eid}/{event.pkey}", "processed")
    await wait_until(lambda: len(receiver.delivered()) == 5, what="the five changes")
    assert receiver.statuses(event.pkey) == [
        "pending",
        "processing",
        "pending",  # the lease expired
        "processing",
        "processed",
    ]
    assert "lease" in receiver.delivered()[2]["reason"]
    for call in receiver.calls:
        check_call(call)


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement this process sends while inside (all engines, every thread)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def new_event(event_id: str, email: str, *, announce: bool) -> NewEvent:
    return queued_event(event_id, email, ctx={"firstName": "Ada"}, announce=announce)


def new_events(n: int, *, announce: bool) -> list[NewEvent]:
    return [new_event("EVTx", f"{i}@example.org", announce=announce) for i in range(n)]


async def test_enqueue_costs_nothing_more_without_a_webhook(db: Database) -> None:
    """The trigger's write: no statement of its own for webhooks unless the event has one,
    and a batch costs the same statements whatever its size."""

    def enqueue(conn: Any, batch: list[NewEvent]) -> list[str]:
        with statements() as seen:
            write_cycle(conn, CycleRequest(new=batch, free=25, lease=timedelta(minutes=1)))
        return list(seen)

    one = await db.write(enqueue, new_events(1, announce=False))
    many = await db.write(enqueue, new_events(50, announce=False))
    assert len(one) == len(many)
    assert not [s for s in many if "webhook" in s]
    hooked = await db.write(enqueue, new_events(50, announce=True))
    extra = [s for s in hooked if "webhook" in s]
    # 75 calls (50 accepted, 25 processing): SQLite takes them 64 rows a statement.
    outbox_statements = 2 if db.is_sqlite else 1
    assert len(hooked) == len(many) + outbox_statements and len(extra) == outbox_statements
    assert all(s.startswith("INSERT INTO webhook_outbox") for s in extra)
    queued = await db.read(webhook_outbox.pending, "EVTx")
    assert Counter(r.status for r in queued) == {"pending": 50, "processing": 25}


async def test_an_event_without_a_webhook_queues_no_call(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver
) -> None:
    """Every kind of change, for an event without a webhook: nothing written to the outbox
    (one with a webhook, on the same server, is announced: the capture works)."""
    admin = server.admin
    eid = await live_event(admin, smtp)
    with statements() as seen:
        await admin.post(f"/api/v1/event-configs/{eid}/pause")
        held = await trigger(admin, eid)
        await admin.post(f"/api/v1/event-configs/{eid}/resume")
        await wait_status(admin, held["href"], "processed")
        smtp.fail_next(451, "try again later")
        retried = await trigger(admin, eid)
        await wait_status(admin, retried["href"], "processed")
        await admin.post(f"/api/v1/event-configs/{eid}/pause")
        ignored = await trigger(admin, eid)
        await admin.post(f"/api/v1/event-configs/{eid}/unpublish")
        await wait_status(admin, ignored["href"], "ignored")
    assert not [s for s in seen if s.startswith("INSERT INTO webhook_outbox")]

    other = (await create_event(admin, "hooked"))["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{other}/publish")).status_code == 200
    await publish_message(admin, other)
    await hook(admin, other, receiver.url)
    with statements() as seen:
        sent = await trigger(admin, other)
        await wait_status(admin, sent["href"], "processed")
    assert [s for s in seen if s.startswith("INSERT INTO webhook_outbox")]


async def test_backoff_grows_and_timeouts_are_retried(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer, receiver: Receiver
) -> None:
    """A receiver that does not answer in time, then fails, then answers: each wait longer
    than the one before (exponential backoff), the send done long before."""
    settings = settings_for(
        database_url,
        data_dir,
        retry_base_seconds=0.2,
        retry_max_seconds=5.0,
        webhook_timeout_seconds=0.3,
    )
    async with RunningServer(settings) as server:
        admin = server.admin
        eid = await live_event(admin, smtp)
        await hook(admin, eid, receiver.url)
        receiver.hangs, receiver.failures = 1, 3
        started = time.monotonic()
        accepted = await trigger(admin, eid)
        await wait_status(admin, accepted["href"], "processed")
        assert time.monotonic() - started < 1  # sooner than the receiver's first time-out
        await wait_until(lambda: len(receiver.delivered()) == 3, timeout=20, what="delivered")
    for call_id, times in receiver.arrivals.items():
        assert len(times) == 5, call_id
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Attempt n waits at least half of base * 2**(n-1) (the jitter's floor): 0.1, 0.2,
        # 0.4, 0.8 s; the first gap also holds the 0.3 s time-out.
        floors = [0.3 + 0.1, 0.2, 0.4, 0.8]
        assert all(g >= f * 0.98 for g, f in zip(gaps, floors, strict=True)), gaps
    assert [d["status"] for d in receiver.delivered()] == ["pending", "processing", "processed"]


async def test_a_hanging_receiver_does_not_slow_sends(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    await hook(admin, eid, receiver.url)
    receiver.hold = asyncio.Event()
    # A send that waited for the receiver would wait its time-out (10 s), and the five of
    # them 50 s: well within one time-out, whatever the machine's load, they did not.
    bound = server.settings.webhook_timeout_seconds * 0.8
    started = time.monotonic()
    hrefs = [(await trigger(admin, eid))["href"] for _ in range(5)]
    for href in hrefs:
        await wait_status(admin, href, "processed", timeout=bound)
    assert time.monotonic() - started < bound
    await smtp.wait_for(5)
    assert receiver.calls == []  # every call is still hanging at the receiver
    # 3 changes each, queued in the transactions that made them (by event, to show which
    # one is missing if ever one is).
    queued = await store.read(webhook_outbox.pending, eid)
    changes = {h[-26:]: sorted(c.status for c in queued if c.pkey == h[-26:]) for h in hrefs}
    assert len(queued) == 15, changes
    assert all(s == ["pending", "processed", "processing"] for s in changes.values()), changes

    receiver.hold.set()
    await wait_until(lambda: len(receiver.delivered()) == 15, what="the held calls answered")
    for href in hrefs:
        assert receiver.statuses(href[-26:]) == ["pending", "processing", "processed"]
    await outbox_drained(store, eid)


@pytest.mark.server_settings(config_cache_seconds=60.0)
async def test_triggers_answered_after_a_webhook_is_set_announce_it(
    server: Any, smtp: FakeSMTPServer, store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the PATCH setting a webhook is answered, every trigger announces its acceptance,
    even while a trigger's lookup of the event configuration that read it before the PATCH is
    still under way: later triggers used to join that lookup, and it was kept in the cache
    for its time to live (the PATCH's invalidation came before it ended)."""
    admin = server.admin
    eid = await live_event(admin, smtp)
    db = server.app.state.txmsg.db
    read = db.read_bounded  # the trigger's reads: bounded as the write funnel's (store/db.py)
    looked_up, release = asyncio.Event(), asyncio.Event()

    async def slow_first_lookup(fn: Any, *args: Any) -> Any:
        result = await read(fn, *args)
        if fn is event_configs._trigger_row and not looked_up.is_set():
            looked_up.set()  # it read the configuration without a webhook...
            await release.wait()  # ... and ends when the test says so
        return result

    monkeypatch.setattr(db, "read_bounded", slow_first_lookup)
    try:
        before = asyncio.create_task(trigger(admin, eid))
        await asyncio.wait_for(looked_up.wait(), 5)
        await hook(admin, eid, "http://127.0.0.1:9/nowhere")
        during = await asyncio.wait_for(trigger(admin, eid), 5)  # the old lookup under way
        release.set()
        await before  # sent while the PATCH was: either configuration is right for it
        after = await trigger(admin, eid)  # the old lookup ended after the PATCH's answer
    finally:
        release.set()
    calls = await store.read(webhook_outbox.pending, eid)
    for accepted in (during, after):
        assert [c.status for c in calls if c.pkey == accepted["PKey"]][:1] == ["pending"]


async def test_webhook_settings_are_checked_and_removable(
    server: Any, smtp: FakeSMTPServer, store: Database
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    base = {"eventId": "hooked", "channel": "email", "channel_config": "mail"}
    for webhook, field_name in [
        ({"url": "http://example.com/h"}, "webhook.secret"),
        ({"url": "ftp://example.com/h", "secret": SECRET}, "webhook.url"),
        ({"url": "http://u:p@example.com/h", "secret": SECRET}, "webhook.url"),
        ({"url": "http://example.com/h", "secret": "short"}, "webhook.secret"),
        ({"url": "http://example.com/h", "secret": SECRET, "x": 1}, "webhook.x"),
        ("http://example.com/h", "webhook"),
    ]:
        r = await admin.post("/api/v1/event-configs", json={**base, "webhook": webhook})
        assert_problem(r, 400, field_name)
    r = await admin.post(
        "/api/v1/event-configs",
        json={**base, "webhook": {"url": "https://example.com/h", "secret": SECRET}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["webhook"] == {"url": "https://example.com/h", "secret_set": True}
    r = await admin.patch("/api/v1/event-configs/EVThooked", json={"webhook": None})
    assert r.json()["webhook"] is None
    # Without a stored secret, a new webhook needs one again: refused by the stored state (a
    # 422), as the spec allows the secret left out of an update.
    r = await admin.patch(
        "/api/v1/event-configs/EVThooked", json={"webhook": {"url": "https://example.com/h"}}
    )
    assert_problem(r, 422, "webhook.secret")


# URLs the sender's HTTP client cannot call: httpx raised (InvalidURL, idna's IDNAError) in the
# sender on every attempt (urlsplit had let them through), or would only fail to connect.
UNCALLABLE_URLS = [
    "http://xn--/y",  # an A-label without Punycode content: idna.IDNAError
    "http://xn--abc.example/y",  # an A-label decoding to code points IDNA refuses
    "http://127.0.0.1:18330/promo\u007f",  # a control character
    "http://127.0.0.1:18330/pro mo",  # whitespace, in the path...
    "http://exa mple.com/y",  # ... or in the host (httpx quotes it to exa%20mple.com)
    "http://example.com/\u200by",  # an invisible format character
    "http://[::1/y",  # a broken IPv6 literal: urlsplit's ValueError was a 500
    "http://[v1.x]/y",  # an IP literal that is not IPv6
    "http://999.1.1.1/y",  # an IPv4 address out of range
    "http://example.com:0/y",  # ports out of 1-65535
    "http://example.com:70000/y",
    "http://example.com:x/y",
]


@pytest.mark.parametrize("url", UNCALLABLE_URLS)
async def test_a_webhook_url_the_sender_cannot_call_is_refused(
    server: Any, smtp: FakeSMTPServer, url: str
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    base = {"eventId": "hooked", "channel": "email", "channel_config": "mail"}
    r = await admin.post(
        "/api/v1/event-configs", json={**base, "webhook": {"url": url, "secret": SECRET}}
    )
    assert_problem(r, 400, "webhook.url")
    good = {"url": "https://example.com/h", "secret": SECRET}
    r = await admin.post("/api/v1/event-configs", json={**base, "webhook": good})
    assert r.status_code == 201, r.text
    for webhook in ({"url": url, "secret": SECRET}, {"url": url}):
        r = await admin.patch("/api/v1/event-configs/EVThooked", json={"webhook": webhook})
        assert_problem(r, 400, "webhook.url")
    # Nothing half-written: the stored webhook is the one set before.
    r = await admin.get("/api/v1/event-configs/EVThooked")
    assert r.json()["webhook"] == {"url": "https://example.com/h", "secret_set": True}


async def test_a_call_failing_unexpectedly_leaves_the_other_calls_settled(
    server: Any,
    smtp: FakeSMTPServer,
    receiver: Receiver,
    store: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A URL stored before URLs were checked as httpx parses them made the sender raise: the
    whole batch went unsettled, so every call in it was made again after its lease, forever,
    and never given up. Now such a call fails alone, is retried with backoff, then given up."""
    admin = server.admin
    news = await live_event(admin, smtp, "news")
    promo = (await create_event(admin, "promo"))["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{promo}/publish")).status_code == 200
    await publish_message(admin, promo)
    await hook(admin, news, receiver.url)
    await hook(admin, promo, receiver.url)

    def store_bad_url(conn: Any) -> None:
        conn.execute(
            sa.update(event_webhooks)
            .where(event_webhooks.c.event_id == promo)
            .values(url="http://xn--/y")
        )

    await store.write(store_bad_url)
    caplog.set_level("WARNING", logger="txmsg.engine.webhooks")
    # The news calls in flight, held by the receiver, while the bad calls fail and are tried
    # again beside them: their results are settled in the same rounds as the bad ones'.
    receiver.hold = asyncio.Event()
    first = await trigger(admin, news)
    await wait_until(lambda: bool(receiver.arrivals), what="a call held at the receiver")
    second = await trigger(admin, news)
    promoted = await trigger(admin, promo)
    for accepted in (first, second, promoted):
        await wait_status(admin, accepted["href"], "processed")
    await wait_until(lambda: len(receiver.arrivals) == 6, what="the news calls at the receiver")
    receiver.hold.set()

    # Every call of `news` delivered once and settled (it used to stay in the outbox, and be
    # made again once its lease ran out although the receiver had answered).
    await wait_until(lambda: len(receiver.delivered()) == 6, what="the news calls delivered")
    await outbox_drained(store, news)
    assert {d["eventId"] for d in receiver.delivered()} == {news}
    assert all(len(times) == 1 for times in receiver.arrivals.values()), receiver.arrivals
    # The bad calls: failed attempts of their own, retried with backoff (not after a lease).
    # Read once none is under way: a retry in flight has not recorded its error yet.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        bad = await store.read(webhook_outbox.pending, promo)
        settled = {c.last_error for c in bad} == {"IDNAError"}
        if settled or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert len(bad) == 3 and settled, bad
    logged = [r.getMessage() for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert logged and all("IDNAError" in m for m in logged)
    assert not [m for m in caplog.messages if "xn--" in m or SECRET in m]

    # Given up once older than the usual window, like any failing call.
    def age(conn: Any) -> None:
        old = datetime.now(UTC) - timedelta(hours=25)
        conn.execute(
            sa.update(webhook_outbox_table)
            .where(webhook_outbox_table.c.event_id == promo)
            .values(created_at=old)
        )

    await store.write(age)
    await outbox_drained(store, promo)
    assert len(receiver.delivered()) == 6


async def test_changing_the_webhook_or_tags_changes_updated_at(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """The webhook and tags live in their own tables: changing them changed nothing in the
    event configuration's row, so its `updated_at` stayed (a label change moved it)."""
    admin = server.admin
    await create_channel(admin, smtp)
    eid = (await create_event(admin, "hooked"))["eventId"]
    path = f"/api/v1/event-configs/{eid}"
    seen = [(await admin.get(path)).json()["updated_at"]]
    for change in (
        {"webhook": {"url": "https://example.com/h", "secret": SECRET}},
        {"webhook": {"url": "https://example.com/moved"}},
        {"webhook": None},
        {"tags": ["spring"]},
    ):
        await asyncio.sleep(0.01)  # the API's times have milliseconds
        r = await admin.patch(path, json=change)
        assert r.status_code == 200, r.text
        assert r.json()["updated_at"] > seen[-1], (change, seen)
        assert (await admin.get(path)).json()["updated_at"] == r.json()["updated_at"]
        seen.append(r.json()["updated_at"])


@pytest.mark.server_settings(webhook_timeout_seconds=20.0)
async def test_a_slow_receiver_delays_only_its_own_calls(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    """One configuration's receiver holds every call (slow, not yet timed out) with 150 calls
    queued; another's answers at once: its calls arrive while the slow receiver has answered
    none. The sender claimed the 100 oldest due calls of every configuration and waited for
    the slowest before claiming more: they arrived after the slow calls' time-out."""
    admin = server.admin
    news = await live_event(admin, smtp, "news")
    promo = (await create_event(admin, "promo"))["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{promo}/publish")).status_code == 200
    await publish_message(admin, promo)
    slow = receiver
    slow.hold = asyncio.Event()
    async with serving() as fast:
        await hook(admin, news, fast.url)
        await hook(admin, promo, slow.url)
        people = [{"email": f"p{i}@example.org", "ctx": {"firstName": "Al"}} for i in range(50)]
        r = await admin.post(f"/rest/mc/{promo}/batch", json={"events": people})
        assert r.status_code == 201, r.text

        async def queued() -> int:
            return len(await store.read(webhook_outbox.pending, promo))

        # Every promo event sent (pending, processing, processed: 150 calls), some of its
        # calls at the slow receiver.
        for _ in range(400):
            if await queued() == 150 and slow.arrivals:
                break
            await asyncio.sleep(0.05)
        assert await queued() == 150 and slow.arrivals

        accepted = await trigger(admin, news)
        # Bounded by meaning: well within the time-out the slow calls would end by.
        bound = server.settings.webhook_timeout_seconds / 4
        await wait_until(lambda: len(fast.delivered()) == 3, timeout=bound, what="fast calls")
        assert fast.statuses(accepted["PKey"]) == ["pending", "processing", "processed"]
        assert slow.calls == []  # the slow receiver has answered nothing yet
        # The slow configuration holds no more than its own share of the calls in flight.
        assert 0 < len(slow.arrivals) <= PER_CONFIG

        slow.hold.set()
        await wait_until(lambda: len(slow.delivered()) == 150, timeout=30, what="slow calls")
    # Each call made once (none timed out, none claimed twice), and settled.
    assert len(slow.arrivals) == 150
    assert all(len(times) == 1 for times in slow.arrivals.values())
    assert len({d["id"] for d in slow.delivered()}) == 150
    await outbox_drained(store, promo)
    await outbox_drained(store, news)
