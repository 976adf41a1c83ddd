"""Channel send-rate caps over HTTP: the setting, its validation, and the cap holding while
real mail goes to the fake SMTP server."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    create_key,
    forbid_server_errors,
    live_event,
    publish_message,
    trigger,
    wait_status,
    wait_until,
)
from rate_support import watch_cap
from txmsg.testing import FakeSMTPServer

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())


def spec_errors(schema: str, value: Any) -> list[str]:
    """What openapi.yaml's `schema` (a components schema) finds wrong in `value`."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": SPEC["components"]}
    return [e.message for e in Draft202012Validator(root).iter_errors(value)]


async def test_the_cap_is_set_shown_changed_and_validated(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    # The spec says what the code does: given, shown, refused.
    for given in ({"per_second": 5}, {"per_day": 900, "bulk_share": 75}, {}, None):
        assert spec_errors("ChannelRateLimitInput", given) == []
    for shown in ({"per_second": 5, "bulk_share": 90}, None):
        assert spec_errors("ChannelRateLimit", shown) == []
    made = await create_channel(admin, smtp, rate_limit={"per_second": 5})
    assert made["rate_limit"] == {"per_second": 5, "bulk_share": 90}  # the default share
    r = await admin.patch(
        "/api/v1/channel-configs/mail", json={"rate_limit": {"per_day": 900, "bulk_share": 75}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["rate_limit"] == {"per_day": 900, "bulk_share": 75}
    r = await admin.patch("/api/v1/channel-configs/mail", json={"from_name": "Shop"})
    # kept by an update that leaves it out
    assert r.json()["rate_limit"] == {"per_day": 900, "bulk_share": 75}
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": None})
    assert r.json()["rate_limit"] is None
    for bad, field in [
        ({"per_second": 0}, "rate_limit.per_second"),
        ({"per_second": 10**7}, "rate_limit.per_second"),
        ({"per_day": "many"}, "rate_limit.per_day"),
        ({"per_hour": 5}, "rate_limit.per_hour"),
        ([5], "rate_limit"),
        ({"per_day": 9, "bulk_share": 0}, "rate_limit.bulk_share"),
        ({"per_day": 9, "bulk_share": 0.5}, "rate_limit.bulk_share"),
        ({"bulk_share": 50}, "rate_limit.bulk_share"),
        ({"per_second": None}, "rate_limit.per_second"),  # not a way to remove the cap
        ({"per_day": 9, "bulk_share": None}, "rate_limit.bulk_share"),
    ]:
        r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": bad})
        assert_problem(r, 400, field)
        assert spec_errors("ChannelRateLimitInput", bad) != [], bad
    r = await admin.get("/api/v1/channel-configs/mail")
    assert r.json()["rate_limit"] is None  # nothing half-written


async def test_a_cap_of_n_per_second_holds_while_mail_flows(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    per_second = 4
    r = await admin.patch(
        "/api/v1/channel-configs/mail", json={"rate_limit": {"per_second": per_second}}
    )
    assert r.status_code == 200, r.text
    await asyncio.sleep(1.1)  # every process reads the caps again within a second
    website = server.client(await create_key(admin, "trigger"))
    count = 14
    start = time.time()
    body = {
        "events": [{"email": f"u{i}@example.org", "ctx": {"firstName": "U"}} for i in range(count)]
    }
    r = await website.post(f"/rest/mc/{event_id}/batch", json=body)
    assert r.status_code == 201, r.text
    arrived = await watch_cap(smtp, count, per_second, start)
    # ... and no slower than the cap allows (a held event goes when its window opens, not
    # at a long poll): 4 windows are enough for 14 at 4/s, with a margin for a loaded machine.
    assert arrived[-1] - start < 4 + 3
    item = r.json()["items"][-1]
    done = await wait_status(website, item["href"], "processed")
    assert done["status"] == "processed"


async def _with_newsletter(
    admin: httpx.AsyncClient, smtp: FakeSMTPServer, cap: Any
) -> tuple[str, str]:
    """A transactional and a bulk event (their eventIds) through "mail", capped by `cap`
    once every process has read it again."""
    urgent = await live_event(admin, smtp)
    created = await create_event(admin, "newsletter", priority="bulk")
    r = await admin.post(f"/api/v1/event-configs/{created['eventId']}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, created["eventId"])
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": cap})
    assert r.status_code == 200, r.text
    await asyncio.sleep(1.1)  # every process reads the caps again within a second
    return urgent, str(created["eventId"])


def _to(smtp: FakeSMTPServer, prefix: str) -> int:
    return sum(m.rcpt_tos[0].startswith(prefix) for m in smtp.messages)


async def _statuses(client: httpx.AsyncClient, hrefs: list[str]) -> list[str]:
    return [(await client.get(h)).json()["status"] for h in hrefs]


async def test_a_per_day_quota_spent_by_bulk_keeps_the_reserve_for_transactional_sends(
    server, smtp: FakeSMTPServer
) -> None:
    """Bulk spends at most its share of the day; transactional sends go on to the full cap."""
    admin = server.admin
    urgent_id, newsletter = await _with_newsletter(admin, smtp, {"per_day": 10, "bulk_share": 50})
    website = server.client(await create_key(admin, "trigger"))
    bulk = {"events": [{"email": f"b{i}@example.org", "ctx": {"firstName": "B"}} for i in range(8)]}
    # The last one expires soon, held by the cap: it ends tooOld, not sent, not lost.
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat(timespec="milliseconds")
    bulk["events"].append({"email": "x@example.org", "ctx": {"firstName": "X"}, "expiration": soon})
    r = await website.post(f"/rest/mc/{newsletter}/batch", json=bulk)
    assert r.status_code == 201, r.text
    *bulk_hrefs, expiring = [item["href"] for item in r.json()["items"]]
    await wait_until(lambda: _to(smtp, "b") == 5, what="bulk's share of the day sent")
    # Transactional sends are not held by the bulk share: the day's other 5 go.
    urgent = [
        await trigger(website, urgent_id, {"email": f"t{i}@example.org", "ctx": {"firstName": "T"}})
        for i in range(6)
    ]
    await wait_until(lambda: _to(smtp, "t") == 5, what="transactional sends to the full cap")
    await asyncio.sleep(0.5)  # one more would arrive now
    assert (_to(smtp, "b"), _to(smtp, "t")) == (5, 5)
    # What the cap holds stays pending: 3 bulk events, and the sixth transactional one.
    statuses = await _statuses(website, bulk_hrefs + [u["href"] for u in urgent])
    assert sorted(statuses) == ["pending"] * 4 + ["processed"] * 10
    expired = await wait_status(website, expiring, "tooOld", timeout=5)
    assert "expired" in expired["reason"] and _to(smtp, "x") == 0


async def test_a_per_second_cap_keeps_its_reserve_while_bulk_drains(
    server, smtp: FakeSMTPServer
) -> None:
    """Bulk takes at most its share of each second: a transactional event triggered after
    bulk took its tokens goes in the same second instead of waiting for the next."""
    admin = server.admin
    urgent_id, newsletter = await _with_newsletter(admin, smtp, {"per_second": 4, "bulk_share": 50})
    website = server.client(await create_key(admin, "trigger"))
    bulk = {
        "events": [{"email": f"b{i}@example.org", "ctx": {"firstName": "B"}} for i in range(24)]
    }
    start = time.time()
    r = await website.post(f"/rest/mc/{newsletter}/batch", json=bulk)
    assert r.status_code == 201, r.text
    await wait_until(lambda: _to(smtp, "b") >= 2, what="the first bulk sends")
    # Without a reserve, bulk (24 at 4/s) would take every second's tokens for 6 s and hold
    # each transactional send to the next second. A loaded machine may delay one send past
    # its second on its own: three tries, one in the same second is enough.
    in_time = []
    for attempt in range(3):
        # Into the next second, after the bulk took that second's share of the tokens.
        await asyncio.sleep(1.15 - time.time() % 1.0)
        fired = time.time()
        body = {"email": f"t{attempt}@example.org", "ctx": {"firstName": "T"}}
        await trigger(website, urgent_id, body)
        sent = attempt + 1
        await wait_until(lambda n=sent: _to(smtp, "t") == n, what="the transactional send")
        in_time.append(math.floor(time.time()) == math.floor(fired))
        if in_time[-1]:
            break
    assert any(in_time), "every transactional send waited for the next second"
    # Bulk never went beyond its 2 a second.
    assert _to(smtp, "b") <= 2 * (math.floor(time.time()) - math.floor(start) + 1)


async def test_ignored_events_leave_a_per_day_quota_to_the_messages_sent(
    server, smtp: FakeSMTPServer
) -> None:
    """Events to a suppressed address end `ignored` after their claim took a token of the
    day's quota: the token goes back, so a quota of 3 still sends 3 real messages, however
    many ignored events went before them in the queue (before, they spent it, and the
    messages behind them waited for the next UTC day)."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    website = server.client(await create_key(admin, "trigger"))
    # A hard bounce quarantines the address (sent before the cap: it spends none of it).
    smtp.fail_next(550, "5.1.1 <gone@example.org>: Recipient address rejected: User unknown")
    gone = {"email": "gone@example.org", "ctx": {"firstName": "G"}}
    bounced = await trigger(website, event_id, gone)
    await wait_status(website, bounced["href"], "deliveryFailed")
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": {"per_day": 3}})
    assert r.status_code == 200, r.text
    await asyncio.sleep(1.1)  # every process reads the caps again within a second
    real = [{"email": f"u{i}@example.org", "ctx": {"firstName": "U"}} for i in range(3)]
    r = await website.post(f"/rest/mc/{event_id}/batch", json={"events": [gone] * 7 + real})
    assert r.status_code == 201, r.text
    hrefs = [item["href"] for item in r.json()["items"]]
    for href in hrefs[:7]:
        done = await wait_status(website, href, "ignored")
        assert done["reason"] == "typology:quarantine"
    for href in hrefs[7:]:
        await wait_status(website, href, "processed")
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "u0@example.org",
        "u1@example.org",
        "u2@example.org",
    ]
    # The day's quota is spent by the 3 sent: a fourth waits for the next day.
    extra = await trigger(website, event_id, {"email": "u3@example.org", "ctx": {"firstName": "U"}})
    await asyncio.sleep(0.5)
    assert await _statuses(website, [extra["href"]]) == ["pending"]
    assert len(smtp.messages) == 3


def _next_midnight(resets_at: str) -> datetime:
    """`resets_at` read, checked to be the next UTC midnight (within a day from now)."""
    at = datetime.fromisoformat(resets_at)
    assert (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0), resets_at
    assert timedelta(0) < at - datetime.now(UTC) <= timedelta(days=1), resets_at
    return at


async def test_what_a_spent_cap_holds_says_so_in_its_status_and_the_configuration(
    server, smtp: FakeSMTPServer
) -> None:
    """The events a spent daily cap holds stay pending, and say why: their status gives the
    cap and when it resets; the channel configuration gives each window's use against its
    limit, read from the cap's own counters."""
    admin = forbid_server_errors(server.admin)
    urgent_id, newsletter = await _with_newsletter(admin, smtp, {"per_day": 10, "bulk_share": 50})
    r = await admin.get("/api/v1/channel-configs/mail")
    day = r.json()["rate_limit_usage"]["day"]
    assert (day["used"], day["limit"], day["bulk"]) == (0, 10, {"used": 0, "limit": 5}), r.text
    website = server.client(await create_key(admin, "trigger"))
    bulk = {"events": [{"email": f"b{i}@example.org", "ctx": {"firstName": "B"}} for i in range(7)]}
    r = await website.post(f"/rest/mc/{newsletter}/batch", json=bulk)
    assert r.status_code == 201, r.text
    hrefs = [item["href"] for item in r.json()["items"]]
    await wait_until(lambda: _to(smtp, "b") == 5, what="bulk's share of the day sent")
    done = await wait_status(website, hrefs[0], "processed")
    assert "reason" not in done
    # The 2 bulk events beyond the share wait for the next day, and say so.
    held = [(await website.get(h)).json() for h in hrefs]
    held = [e for e in held if e["status"] == "pending"]
    assert len(held) == 2, held
    for event in held:
        reason = event["reason"]
        assert reason.startswith(
            "waiting for the bulk share of the daily cap of channel configuration 'mail'"
            " (bulk_share 50 %: 5 of its 10 per day), which resets at "
        ), reason
        _next_midnight(reason.rsplit(" ", 1)[1])
    r = await admin.get("/api/v1/channel-configs/mail")
    usage = r.json()["rate_limit_usage"]
    assert list(usage) == ["day"], usage
    assert (usage["day"]["used"], usage["day"]["bulk"]) == (5, {"used": 5, "limit": 5}), usage
    _next_midnight(usage["day"]["resets_at"])
    assert spec_errors("ChannelConfig", r.json()) == []
    # Transactional sends spend the rest of the day; one more waits, saying for what.
    urgent = [
        await trigger(website, urgent_id, {"email": f"t{i}@example.org", "ctx": {"firstName": "T"}})
        for i in range(6)
    ]
    await wait_until(lambda: _to(smtp, "t") == 5, what="transactional sends to the full cap")
    await asyncio.sleep(0.3)
    answers = [(await website.get(u["href"])).json() for u in urgent]
    waiting = [e for e in answers if e["status"] == "pending"]
    assert [e["reason"].split(", which")[0] for e in waiting] == [
        "waiting for the daily cap of channel configuration 'mail' (10 per day)"
    ], waiting
    # The latest-events lists say the same of the events they show, in both lanes: the bulk
    # events wait now for the spent day, no longer for their share alone.
    spent_day = "waiting for the daily cap of channel configuration 'mail' (10 per day), which"
    for event_id, pkeys in (
        (urgent_id, [e["PKey"] for e in waiting]),
        (newsletter, [e["PKey"] for e in reversed(held)]),  # newest first
    ):
        r = await admin.get(f"/api/v1/events/{event_id}", params={"status": "pending"})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["PKey"] for i in items] == pkeys, items
        assert all(i["reason"].startswith(spent_day) for i in items), items
    sent = (await admin.get(f"/api/v1/events/{urgent_id}", params={"status": "processed"})).json()
    assert [i["reason"] for i in sent["items"]] == [None] * 5, sent
    listed = (await admin.get("/api/v1/channel-configs")).json()["items"]
    assert [c["rate_limit_usage"]["day"]["used"] for c in listed] == [10]
    # The same, scraped: the counters, and the due events the spent cap holds by lane.
    text = (await admin.get("/metrics")).text
    for sample in (
        'txmsg_channel_cap_used{channel_config="mail",share="all",window="day"} 10.0',
        'txmsg_channel_cap_limit{channel_config="mail",share="all",window="day"} 10.0',
        'txmsg_channel_cap_used{channel_config="mail",share="bulk",window="day"} 5.0',
        'txmsg_channel_cap_limit{channel_config="mail",share="bulk",window="day"} 5.0',
        'txmsg_channel_cap_held{channel_config="mail",lane="bulk"} 2.0',
        'txmsg_channel_cap_held{channel_config="mail",lane="transactional"} 1.0',
    ):
        assert sample in text, (sample, [x for x in text.splitlines() if "cap" in x])
    # No cap: no usage, and nothing said of one.
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": None})
    assert r.json()["rate_limit_usage"] is None, r.text
    assert spec_errors("ChannelConfig", r.json()) == []
    scraped = (await admin.get("/metrics")).text.splitlines()
    assert not [line for line in scraped if line.startswith("txmsg_channel_cap_")], scraped
