"""Reports end to end: sends over HTTP and SMTP, interactions appended through the store,
day reports (JSON and CSV, per version, per tag) and the recipients report, value by value."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    create_key,
    live_event,
    publish_message,
    queued_event,
    trigger,
    wait_status,
)
from profile_helpers import profile_event, put_profile
from txmsg.api import reports as reports_api
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.queue import NewEvent, Outcome, new_pkey
from txmsg.core.reports import METRICS
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import isoformat, utcnow
from txmsg.store import delivery_log, report_counts
from txmsg.store import recipients as recipients_store
from txmsg.store import reports as report_store
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue import enqueue, housekeeping
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.testing import FakeSMTPServer


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def counts(**nonzero: int) -> dict[str, int]:
    return {m: nonzero.get(m, 0) for m in METRICS}


async def send(admin: Any, event_id: str, email: str, status: str = "processed") -> str:
    accepted = await trigger(admin, event_id, {"email": email, "ctx": {"firstName": "Ada"}})
    await wait_status(admin, accepted["href"], status)
    return str(accepted["PKey"])


async def test_day_report_counts_sends_interactions_and_versions(
    server: Any, smtp: FakeSMTPServer, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)

    a = await send(admin, eid, "a@example.org")
    b = await send(admin, eid, "b@example.org")
    smtp.fail_next(550, "no such user")
    failed = await send(admin, eid, "gone@example.org", "deliveryFailed")
    await publish_message(admin, eid, subject="v2 {{ ctx.firstName }}")
    c = await send(admin, eid, "c@example.org")

    def entry(pkey: str, kind: Interaction, at: datetime, **detail: Any) -> LogEntry:
        return LogEntry(pkey, eid, kind, at, detail or None)

    # Two batches: a's second open in the later batch is not unique any more.
    await store.write(
        delivery_log.append_in,
        [
            entry(a, Interaction.DELIVERED, yesterday),
            entry(a, Interaction.OPENED, today),
            entry(a, Interaction.OPENED, today),
            entry(b, Interaction.OPENED, today),
            entry(a, Interaction.CLICKED, today, url="https://example.com/x"),
            entry(b, Interaction.BOUNCED, today, bounce="hard"),
            entry(c, Interaction.BOUNCED, today, bounce="soft"),
            entry(c, Interaction.SENT, today),  # the send is counted from its status alone
        ],
    )
    await store.write(
        delivery_log.append_in,
        [
            entry(a, Interaction.OPENED, today),
            entry(c, Interaction.CLICKED, today),
            entry(c, Interaction.SPAM, today),
            entry(a, Interaction.UNSUBSCRIBED, today),
            entry(c, Interaction.UNDELIVERED, today),
        ],
    )
    # Unpublishing turns a waiting event into `ignored`.
    r = await admin.post(f"/api/v1/event-configs/{eid}/pause")
    assert r.status_code == 200, r.text
    held = await trigger(admin, eid)
    r = await admin.post(f"/api/v1/event-configs/{eid}/unpublish")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "ignored")

    day, before = today.date().isoformat(), yesterday.date().isoformat()
    r = await admin.get(f"/api/v1/reports/{eid}", params={"from": before, "to": day})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["eventId"], report["from"], report["to"]) == (eid, before, day)
    # bounced_hard: b's appended bounce, and the 550 "no such user" the send itself met.
    # An email accepted by the SMTP server is sent and delivered at once.
    v1_today = counts(
        sent=2, delivered=2, failed=1, opened=4, opened_unique=2, clicked=1, clicked_unique=1,
        bounced_hard=2, unsubscribed=1,
    )  # fmt: skip
    v2_today = counts(
        sent=1, delivered=1, clicked=1, clicked_unique=1, bounced_soft=1, spam=1, failed=1
    )
    unversioned = counts(ignored=1)
    all_today = {m: v1_today[m] + v2_today[m] + unversioned[m] for m in METRICS}
    assert report["days"] == [
        {"day": before, **counts(delivered=1)},
        {"day": day, **all_today},
    ]
    assert report["total"] == {**all_today, "delivered": all_today["delivered"] + 1}
    by_version = {v["message_version"]: v for v in report["versions"]}
    assert set(by_version) == {None, 1, 2}
    assert by_version[1]["total"] == {**v1_today, "delivered": v1_today["delivered"] + 1}
    assert by_version[2]["days"][1] == {"day": day, **v2_today}
    assert by_version[None]["total"] == unversioned

    # The same in CSV, value by value.
    r = await admin.get(
        f"/api/v1/reports/{eid}", params={"from": before, "to": day, "format": "csv"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == ["day", "message_version", *METRICS]

    def line(d: str, v: str, c: dict[str, int]) -> list[str]:
        return [d, v, *(str(c[m]) for m in METRICS)]

    assert lines[1:] == [
        line(before, "all", counts(delivered=1)),
        line(before, "1", counts(delivered=1)),
        line(day, "all", all_today),
        line(day, "", unversioned),
        line(day, "1", v1_today),
        line(day, "2", v2_today),
    ]
    assert failed  # its row is counted in v1's `failed`

    # `from`/`to` select the days: yesterday alone, today alone, a range with nothing in it.
    async def csv_lines(**params: str) -> list[list[str]]:
        r = await admin.get(f"/api/v1/reports/{eid}", params={**params, "format": "csv"})
        assert r.status_code == 200, r.text
        return list(csv.reader(io.StringIO(r.text)))[1:]

    assert await csv_lines(**{"from": before, "to": before}) == [
        line(before, "all", counts(delivered=1)),
        line(before, "1", counts(delivered=1)),
    ]
    assert await csv_lines(**{"from": day}) == [
        line(day, "all", all_today),
        line(day, "", unversioned),
        line(day, "1", v1_today),
        line(day, "2", v2_today),
    ]
    long_ago = (today - timedelta(days=40)).date()
    assert await csv_lines(**{"from": long_ago.isoformat(), "to": long_ago.isoformat()}) == [
        line(long_ago.isoformat(), "all", counts())
    ]
    # Without `from`: the 30 days up to `to`, yesterday's and today's slices among them.
    default = await csv_lines(to=day)
    assert [row[0] for row in default if row[1] == "all"] == [
        (today - timedelta(days=29 - i)).date().isoformat() for i in range(30)
    ]
    assert len(default) == 30 + 1 + 3


async def test_stale_outcomes_are_not_counted(server: Any, smtp: FakeSMTPServer, store: Database):
    """An outcome whose lease was lost changes nothing, and is not counted either."""
    eid = await live_event(server.admin, smtp)
    await server.admin.post(f"/api/v1/event-configs/{eid}/pause")
    held = await trigger(server.admin, eid)
    r = await server.admin.post(f"/api/v1/event-configs/{eid}/resume")
    assert r.status_code == 200
    await wait_status(server.admin, held["href"], "processed")

    def stale(conn: Any) -> None:
        row = get_event(conn, eid, held["PKey"])
        late = Outcome(row.id, "not-the-token", EventStatus.DELIVERY_FAILED, "late")
        write_cycle(conn, CycleRequest(outcomes=[late]))

    await store.write(stale)
    r = await server.admin.get(f"/api/v1/reports/{eid}")
    assert r.json()["total"] == counts(sent=1, delivered=1)


async def test_tags_validated_stored_and_reported(
    server: Any, smtp: FakeSMTPServer, store: Database
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    bad = await admin.post(
        "/api/v1/event-configs",
        json={"eventId": "x", "channel": "email", "channel_config": "mail", "tags": ["ok", "n o"]},
    )
    assert_problem(bad, 400, "tags[1]")
    assert_problem(
        await admin.post(
            "/api/v1/event-configs",
            json={"eventId": "x", "channel": "email", "channel_config": "mail", "tags": "promo"},
        ),
        400,
        "tags",
    )
    assert (await admin.get("/api/v1/event-configs/EVTx")).status_code == 404  # nothing written

    first = await create_event(admin, "orders", tags=["shop", "q4", "shop"])
    assert first["tags"] == ["q4", "shop"]  # a set: sorted, duplicates dropped
    second = await create_event(admin, "refunds", tags=["shop"])
    other = await create_event(admin, "news", tags=["marketing"])
    r = await admin.patch(f"/api/v1/event-configs/{other['eventId']}", json={"label": "News"})
    assert r.json()["tags"] == ["marketing"]  # a PATCH without tags keeps them
    r = await admin.patch(f"/api/v1/event-configs/{first['eventId']}", json={"tags": ["shop"]})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["shop"]
    r = await admin.get(f"/api/v1/event-configs/{first['eventId']}")
    assert r.json()["tags"] == ["shop"]
    listed = {
        e["eventId"]: e["tags"] for e in (await admin.get("/api/v1/event-configs")).json()["items"]
    }
    assert listed == {"EVTorders": ["shop"], "EVTrefunds": ["shop"], "EVTnews": ["marketing"]}

    for event in (first, second, other):
        eid = event["eventId"]
        assert (await admin.post(f"/api/v1/event-configs/{eid}/publish")).status_code == 200
        await publish_message(admin, eid)
    await send(admin, "EVTorders", "a@example.org")
    await send(admin, "EVTorders", "b@example.org")
    pkey = await send(admin, "EVTrefunds", "c@example.org")
    await send(admin, "EVTnews", "d@example.org")
    now = datetime.now(UTC)
    await store.write(
        delivery_log.append_in, [LogEntry(pkey, "EVTrefunds", Interaction.OPENED, now)]
    )

    r = await admin.get("/api/v1/reports", params={"tag": "shop"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["tag"] == "shop"
    assert report["total"] == counts(sent=3, delivered=3, opened=1, opened_unique=1)
    assert [(e["eventId"], e["total"]["sent"]) for e in report["events"]] == [
        ("EVTorders", 2),
        ("EVTrefunds", 1),
    ]
    assert len(report["days"]) == 30 and report["to"] == now.date().isoformat()
    r = await admin.get(
        "/api/v1/reports", params={"tag": "shop", "format": "csv", "from": report["to"]}
    )
    assert rows_of(r.text) == [
        {"day": report["to"], "eventId": "all", **{m: str(v) for m, v in report["total"].items()}},
        {
            "day": report["to"],
            "eventId": "EVTorders",
            **{m: str(v) for m, v in counts(sent=2, delivered=2).items()},
        },
        {
            "day": report["to"],
            "eventId": "EVTrefunds",
            **{
                m: str(v) for m, v in counts(sent=1, delivered=1, opened=1, opened_unique=1).items()
            },
        },
    ]
    # A tag no event carries (a typo) is said so, not answered with a month of zeros.
    unknown = await admin.get("/api/v1/reports", params={"tag": "nothing"})
    assert_problem(unknown, 404)
    assert unknown.json()["detail"] == "no event configuration is tagged 'nothing'"

    marketer = server.client(await create_key(admin, "marketer"))
    assert (await marketer.get("/api/v1/reports", params={"tag": "shop"})).status_code == 200
    await marketer.aclose()


@pytest.mark.parametrize(
    ("params", "field", "status"),
    [
        ({"from": "2026-13-01"}, "from", 400),
        ({"to": "yesterday"}, "to", 400),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from", 422),  # the pair, not a day
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from", 422),
        ({"format": "xml"}, "format", 400),
        # The documented form only (YYYY-MM-DD), not ISO 8601's basic or week forms.
        ({"from": "20261201"}, "from", 400),
        ({"to": "2026-W49-1"}, "to", 400),
        # Given empty is malformed, not absent (as `limit=` or `format=` are elsewhere).
        ({"from": ""}, "from", 400),
        ({"to": ""}, "to", 400),
        # Given twice: which one was meant cannot be told.
        ([("from", "2026-12-01"), ("from", "2026-12-02")], "from", 400),
        ([("format", "csv"), ("format", "json")], "format", 400),
    ],
)
async def test_report_parameters_are_checked(
    server: Any, smtp: FakeSMTPServer, params: Any, field: str, status: int
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    assert_problem(await admin.get(f"/api/v1/reports/{eid}", params=params), status, field)
    items = list(params.items()) if isinstance(params, dict) else params
    tagged = await admin.get("/api/v1/reports", params=[("tag", "shop"), *items])
    assert_problem(tagged, status, field)
    assert_problem(await admin.get("/api/v1/reports"), 400, "tag")
    assert_problem(await admin.get("/api/v1/reports", params={"tag": "a b"}), 400, "tag")
    assert_problem(await admin.get("/api/v1/reports/EVTnope"), 404)
    assert_problem(await admin.get("/api/v1/reports/EVTnope/recipients"), 404)
    recipients = f"/api/v1/reports/{eid}/recipients"
    assert_problem(await admin.get(recipients, params={"format": "xml"}), 400, "format")


async def test_recipients_report_streams_every_message_in_chunks(
    server: Any, smtp: FakeSMTPServer, store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports_api, "RECIPIENTS_CHUNK", 2)  # five messages: three chunks
    admin = server.admin
    eid = await live_event(admin, smtp)
    pkeys = [await send(admin, eid, f"r{i}@example.org") for i in range(4)]
    smtp.fail_next(550, "mailbox unavailable")
    pkeys.append(await send(admin, eid, "r4@example.org", "deliveryFailed"))
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    await store.write(
        delivery_log.append_in,
        [
            LogEntry(pkeys[0], eid, Interaction.OPENED, t0 + timedelta(minutes=5)),
            LogEntry(pkeys[0], eid, Interaction.OPENED, t0 + timedelta(minutes=1)),
            LogEntry(pkeys[0], eid, Interaction.CLICKED, t0 + timedelta(minutes=2)),
            LogEntry(pkeys[3], eid, Interaction.DELIVERED, t0),
            LogEntry(pkeys[3], eid, Interaction.UNSUBSCRIBED, t0 + timedelta(hours=1)),
        ],
    )
    statuses = {}
    for pkey in pkeys:
        statuses[pkey] = (await admin.get(f"/rest/mc/{eid}/{pkey}")).json()

    r = await admin.get(f"/api/v1/reports/{eid}/recipients")
    assert r.status_code == 200, r.text
    assert r.headers["txmsg-interactions-expired"] == "false"
    rows = rows_of(r.text)
    assert [row["PKey"] for row in rows] == pkeys
    empty_interactions = {
        f"{k}_at": ""
        for k in ("delivered", "undelivered", "failed", "opened", "clicked", "bounced", "spam")
    } | {"unsubscribed_at": "", "opened_count": "0", "clicked_count": "0"}
    for i, (pkey, row) in enumerate(zip(pkeys, rows, strict=True)):
        expected = {
            "PKey": pkey,
            "address": f"r{i}@example.org",
            "profile_id": "",
            "message_version": "1",
            "status": "processed" if i < 4 else "deliveryFailed",
            "reason": "" if i < 4 else statuses[pkey]["reason"],
            "triggered_at": statuses[pkey]["eventDate"],
            "sent_at": row["sent_at"] if i < 4 else "",
            **empty_interactions,
        }
        if i < 4:  # email: the SMTP server's acceptance is the delivery
            expected["delivered_at"] = row["sent_at"]
        if i >= 4:  # "550 mailbox unavailable": a hard bounce, logged with the failure
            assert row["bounced_at"] >= statuses[pkey]["eventDate"]
            expected["bounced_at"] = row["bounced_at"]
        if i == 0:
            expected |= {
                "opened_at": isoformat(t0 + timedelta(minutes=1)),
                "opened_count": "2",
                "clicked_at": isoformat(t0 + timedelta(minutes=2)),
                "clicked_count": "1",
            }
        if i == 3:
            expected |= {
                "delivered_at": isoformat(t0),
                "unsubscribed_at": isoformat(t0 + timedelta(hours=1)),
            }
        assert row == expected
        if i < 4:
            assert datetime.fromisoformat(row["sent_at"]) <= datetime.now(UTC)

    r = await admin.get(f"/api/v1/reports/{eid}/recipients", params={"format": "json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["eventId"] == eid and body["interactions_expired"] is False
    assert [item["PKey"] for item in body["items"]] == pkeys
    assert body["items"][0]["opened_count"] == 2
    assert body["items"][0]["message_version"] == 1

    marketer = server.client(await create_key(admin, "marketer"))
    assert_problem(await marketer.get(f"/api/v1/reports/{eid}/recipients"), 403)
    await marketer.aclose()


async def test_recipients_report_streams_thousands_of_rows(
    server: Any, smtp: FakeSMTPServer, store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,500 messages: read from the database 1,000 at a time and sent as they are read (a
    chunked answer without a length), every message once, in order."""
    admin = server.admin
    eid = await live_event(admin, smtp)
    await admin.post(f"/api/v1/event-configs/{eid}/pause")  # they wait: nothing is sent
    now = utcnow()
    batch = [
        queued_event(
            eid, f"r{i}@example.org", status=EventStatus.PAUSED, ctx={"firstName": "Ada"}, now=now
        )
        for i in range(3500)
    ]
    await store.write(enqueue.enqueue_in, batch)
    reads: list[int] = []
    real_chunk = recipients_store.chunk

    def counted_chunk(*args: Any) -> list[dict[str, Any]]:
        rows = real_chunk(*args)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(recipients_store, "chunk", counted_chunk)
    received: list[bytes] = []
    async with admin.stream("GET", f"/api/v1/reports/{eid}/recipients") as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers
        assert r.headers["transfer-encoding"] == "chunked"
        async for part in r.aiter_raw():
            received.append(part)
    assert reads == [1000, 1000, 1000, 500, 0]
    assert len(received) > 1
    rows = rows_of(b"".join(received).decode())
    assert [(row["PKey"], row["address"], row["status"]) for row in rows] == [
        (e.pkey, e.email, "paused") for e in batch
    ]


async def test_recipients_report_of_profile_based_messages(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Profile-based messages: the profile id, and the profile's address when the trigger
    named none."""
    admin = server.admin
    eid = await profile_event(
        admin, smtp, reconciliation={"from": "ctx.customer", "to": "profile_id"}
    )
    await put_profile(admin, "c-42", email="grace@example.org", first_name="Grace")
    await put_profile(admin, "c-43", email="linus@example.org", first_name="Linus")
    grace = await trigger(admin, eid, {"ctx": {"customer": "c-42", "order": "A1"}})
    nobody = await trigger(admin, eid, {"ctx": {"customer": "c-99", "order": "A2"}})
    await wait_status(admin, grace["href"], "processed")
    await wait_status(admin, nobody["href"], "targetingFailed")
    r = await admin.get(f"/api/v1/reports/{eid}/recipients")
    assert r.status_code == 200, r.text
    rows = {row["PKey"]: row for row in rows_of(r.text)}
    assert (rows[grace["PKey"]]["profile_id"], rows[grace["PKey"]]["address"]) == (
        "c-42",
        "grace@example.org",
    )
    assert rows[grace["PKey"]]["message_version"] == "1"
    assert (rows[nobody["PKey"]]["profile_id"], rows[nobody["PKey"]]["address"]) == ("", "")
    assert rows[nobody["PKey"]]["status"] == "targetingFailed"


def expire_and_count(conn: Any, now: datetime) -> int:
    """The scheduler's housekeeping of expired events, with their report counts."""
    expired = housekeeping.expire_queued(conn, now)
    report_counts.add(conn, report_counts.of_changes(expired.changes))
    return expired.count


async def test_expired_queued_events_count_as_failed(database_url: str) -> None:
    """`tooOld` set by housekeeping (not the write funnel) is counted too, on its day."""
    db = Database(database_url)
    await db.migrate()
    try:
        now = utcnow()
        stale = [
            NewEvent(
                new_pkey(),
                "EVTold",
                0,
                EventStatus.PENDING,
                "a@example.org",
                {},
                now,
                None,
                now + timedelta(seconds=1),
                now + timedelta(hours=1),
                {},
            )
            for _ in range(3)
        ]
        await db.write(enqueue.enqueue_in, stale)
        later = now + timedelta(seconds=5)
        assert await db.write(expire_and_count, later) == 3
        assert await db.write(expire_and_count, later) == 0
        rows = await db.read(report_store.day_counts, ["EVTold"], later.date(), later.date())
        assert rows == [("EVTold", later.date(), 0, "failed", 3)]
    finally:
        await db.dispose()


async def test_csv_cells_a_spreadsheet_would_run_are_defused(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """An address chosen by whoever triggers (`=cmd|...@example.org` is a valid one) comes
    out of a CSV export quoted, so a spreadsheet shows it instead of running it; the
    suppression list's CSV reads back the same address."""
    admin = server.admin
    eid = await live_event(admin, smtp)
    formula = "=cmd|'/Ccalc'!A0@example.org"
    await send(admin, eid, formula)
    r = await admin.get(f"/api/v1/reports/{eid}/recipients")
    assert r.status_code == 200, r.text
    assert f",'{formula}," in r.text and f",{formula}," not in r.text
    deny = {"channel": "email", "address": "+1@example.org", "reason": "=HYPERLINK(1)"}
    assert (await admin.post("/api/v1/denylist", json=deny)).status_code == 201
    exported = (await admin.get("/api/v1/suppressions.csv")).text
    assert "email,'+1@example.org,denylist,'=HYPERLINK" in exported
    assert (await admin.delete("/api/v1/denylist/email/+1@example.org")).status_code == 204
    r = await admin.post(
        "/api/v1/suppressions.csv", content=exported, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    why = (await admin.get("/api/v1/suppressions/email/+1@example.org")).json()
    assert why["suppressed"] is True, why
