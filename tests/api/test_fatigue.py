"""Fatigue rules end to end: exact under concurrency, sliding, per-profile maximum, report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from conftest import RunningServer, settings_for
from helpers import assert_problem, forbid_server_errors, trigger, wait_status
from profile_helpers import event_based, profile_event, put_profile
from txmsg.store.events import get_event
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}


async def add_rule(admin, **body) -> dict:
    r = await admin.post("/api/v1/fatigue-rules", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def final_statuses(client, accepted: list[dict]) -> list[dict]:
    return list(
        await asyncio.gather(
            *(
                wait_status(client, a["href"], {"processed", "ignored"}, timeout=30)
                for a in accepted
            )
        )
    )


# A 2 s lease lapsed mid-send on a busy machine and the event was (by design) sent again.
@pytest.mark.server_settings(lease=timedelta(seconds=30))
async def test_fifty_simultaneous_triggers_send_exactly_three(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "busy", email="busy@example.org", first_name="B")
    await put_profile(admin, "calm", email="calm@example.org", first_name="C")
    rule = await add_rule(admin, name="weekly", channel="email", max_messages=3, period="P7D")
    assert rule == {
        "name": "weekly",
        "channel": "email",
        "max_messages": 3,
        "period": "P7D",
        "enabled": True,
    }
    accepted = await asyncio.gather(
        *(trigger(admin, event, {"ctx": {"id": "busy", "order": str(i)}}) for i in range(50))
    )
    done = await final_statuses(admin, accepted)
    assert sum(d["status"] == "processed" for d in done) == 3
    ignored = [d for d in done if d["status"] == "ignored"]
    assert len(ignored) == 47 and {d["reason"] for d in ignored} == {"fatigue:weekly"}
    await smtp.wait_for(3)
    await asyncio.sleep(0.2)
    assert len(smtp.messages) == 3
    # Another profile has its own count; event-based messages are never counted nor excluded.
    other = await trigger(admin, event, {"ctx": {"id": "calm"}})
    await wait_status(admin, other["href"], "processed")
    plain = await event_based(admin)
    for _ in range(4):
        sent = await trigger(admin, plain, {"email": "busy@example.org", "ctx": {"firstName": "B"}})
        await wait_status(admin, sent["href"], "processed")

    r = await admin.get("/api/v1/fatigue-rules/weekly/report")
    assert r.status_code == 200, r.text
    today = datetime.now(UTC).date().isoformat()
    assert r.json() == {"name": "weekly", "days": [{"day": today, "excluded": 47}]}
    assert_problem(await admin.get("/api/v1/fatigue-rules/nope/report"), 404)


async def test_several_dispatchers_share_the_count(
    database_url: str, data_dir, smtp: FakeSMTPServer
) -> None:
    """Two engine processes (each its own dispatcher and write funnel) on one database."""
    # Leases far longer than the harness's 2 s: on a busy machine a 2 s lease lapsed mid-send and
    # the other dispatcher sent the event again (by design), which is not what this test is about.
    settings = settings_for(database_url, data_dir, lease=timedelta(seconds=30))
    async with RunningServer(settings) as one, RunningServer(settings) as two:
        event = await profile_event(one.admin, smtp, reconciliation=BY_ID)
        await put_profile(one.admin, "busy", email="busy@example.org", first_name="B")
        await add_rule(one.admin, name="daily", channel="all", max_messages=3, period="P1D")
        accepted = await asyncio.gather(
            *(
                trigger(server.admin, event, {"ctx": {"id": "busy"}})
                for server in (one, two)
                for _ in range(25)
            )
        )
        done = await final_statuses(one.admin, accepted)
        assert sum(d["status"] == "processed" for d in done) == 3
        await smtp.wait_for(3)
        await asyncio.sleep(0.2)
        assert len(smtp.messages) == 3


async def test_period_slides(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "p", email="p@example.org", first_name="P")
    # 4 s: at load 15 the second trigger was sent more than 2 s after the first.
    await add_rule(admin, name="burst", channel="all", max_messages=1, period="PT4S")
    first = await trigger(admin, event, {"ctx": {"id": "p"}})
    await wait_status(admin, first["href"], "processed")
    loop = asyncio.get_running_loop()
    first_sent_by = loop.time()
    second = await trigger(admin, event, {"ctx": {"id": "p"}})
    assert (await wait_status(admin, second["href"], "ignored"))["reason"] == "fatigue:burst"
    # Until the first message has left the window (it was sent before it read processed).
    await asyncio.sleep(first_sent_by + 4.1 - loop.time())
    third = await trigger(admin, event, {"ctx": {"id": "p"}})
    await wait_status(admin, third["href"], "processed")


async def test_scheduled_messages_count(server, smtp: FakeSMTPServer) -> None:
    """A message scheduled for later counts against sends before it, within the period."""
    admin = server.admin
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "p", email="p@example.org", first_name="P")
    await add_rule(admin, name="daily", channel="all", max_messages=1, period="P1D")
    at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    scheduled = await trigger(admin, event, {"ctx": {"id": "p"}, "scheduled": at})
    db = server.app.state.txmsg.db
    for _ in range(75):  # housekeeping finds the profile of the scheduled event ahead
        row = await db.read(get_event, event, scheduled["PKey"])
        if row.profile_id == "p":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the scheduled event was never reconciled ahead")
    now = await trigger(admin, event, {"ctx": {"id": "p"}})
    assert (await wait_status(admin, now["href"], "ignored"))["reason"] == "fatigue:daily"
    await wait_status(admin, scheduled["href"], "processed")
    assert [m.rcpt_tos for m in await smtp.wait_for(1)] == [["p@example.org"]]


async def test_per_profile_maximum_channels_and_disabling(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "one", email="one@example.org", attributes={"max_mails": 1})
    await put_profile(admin, "two", email="two@example.org", attributes={"max_mails": 2})
    await put_profile(admin, "free", email="free@example.org")  # no attribute: not limited
    await add_rule(
        admin,
        name="own-limit",
        channel="email",
        max_messages={"profile_attribute": "max_mails"},
        period="P30D",
    )
    await add_rule(admin, name="sms-only", channel="sms", max_messages=0, period="P1D")
    accepted = {
        pid: [await trigger(admin, event, {"ctx": {"id": pid}}) for _ in range(3)]
        for pid in ("one", "two", "free")
    }
    sent = {
        pid: sum(d["status"] == "processed" for d in await final_statuses(admin, items))
        for pid, items in accepted.items()
    }
    assert sent == {"one": 1, "two": 2, "free": 3}

    r = await admin.patch("/api/v1/fatigue-rules/own-limit", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    again = await trigger(admin, event, {"ctx": {"id": "one"}})
    await wait_status(admin, again["href"], "processed")
    listed = (await admin.get("/api/v1/fatigue-rules")).json()["items"]
    assert [r["name"] for r in listed] == ["own-limit", "sms-only"]
    assert (await admin.get("/api/v1/fatigue-rules/sms-only")).json()["max_messages"] == 0
    assert (await admin.delete("/api/v1/fatigue-rules/sms-only")).status_code == 204
    assert_problem(await admin.get("/api/v1/fatigue-rules/sms-only"), 404)


async def test_rule_validation(server) -> None:
    admin = forbid_server_errors(server.admin)
    good = {"name": "r", "channel": "email", "max_messages": 3, "period": "P7D"}
    for change, field in (
        ({"channel": "fax"}, "channel"),
        ({"max_messages": -1}, "max_messages"),
        ({"max_messages": "3"}, "max_messages"),
        ({"max_messages": {"attribute": "x"}}, "max_messages.attribute"),
        ({"period": "P1M"}, "period"),
        ({"period": "7 days"}, "period"),
        ({"period": "PT0S"}, "period"),
        ({"name": "bad name"}, "name"),
        ({"extra": 1}, "extra"),
    ):
        r = await admin.post("/api/v1/fatigue-rules", json={**good, **change})
        assert_problem(r, 400, field)
    await add_rule(admin, **good)
    assert_problem(await admin.post("/api/v1/fatigue-rules", json=good), 409)
    r = await admin.patch("/api/v1/fatigue-rules/r", json={"period": "P1Y"})
    assert_problem(r, 400, "period")
    assert_problem(await admin.patch("/api/v1/fatigue-rules/r", json={"name": "s"}), 409, "name")
    r = await admin.patch("/api/v1/fatigue-rules/r", json={"name": "s p"})
    assert_problem(r, 400, "name")  # not a name at all


async def test_a_message_that_was_never_sent_counts_against_no_rule(
    server, smtp: FakeSMTPServer
) -> None:
    """A rule counts the messages a person was sent: one the server refused (5xx), one that
    expired while retried, does not use up the profile's allowance."""
    admin = server.admin
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "ada", email="ada@example.org", first_name="Ada")
    await add_rule(admin, name="daily", channel="email", max_messages=1, period="P1D")
    smtp.fail_next(554, "5.7.1 Message refused")
    refused = await trigger(admin, event, {"ctx": {"id": "ada"}})
    await wait_status(admin, refused["href"], "deliveryFailed")
    smtp.fail_next(451, "4.3.0 Try again later", count=1000)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expired = await trigger(admin, event, {"ctx": {"id": "ada"}, "expiration": soon})
    await wait_status(admin, expired["href"], "tooOld", timeout=10)
    smtp.reset_failures()
    sent = await trigger(admin, event, {"ctx": {"id": "ada"}})
    await wait_status(admin, sent["href"], "processed")  # the day's one message
    again = await trigger(admin, event, {"ctx": {"id": "ada"}})
    assert (await wait_status(admin, again["href"], "ignored"))["reason"] == "fatigue:daily"
