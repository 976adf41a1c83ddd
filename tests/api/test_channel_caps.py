"""Channel send-rate caps over HTTP: the setting, its validation, and the cap holding while
real mail goes to the fake SMTP server."""

from __future__ import annotations

import asyncio
import time

from helpers import assert_problem, create_channel, create_key, live_event, wait_status
from rate_support import watch_cap
from txmsg.testing import FakeSMTPServer


async def test_the_cap_is_set_shown_changed_and_validated(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    made = await create_channel(admin, smtp, rate_limit={"per_second": 5})
    assert made["rate_limit"] == {"per_second": 5}
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": {"per_day": 900}})
    assert r.status_code == 200, r.text
    assert r.json()["rate_limit"] == {"per_day": 900}
    r = await admin.patch("/api/v1/channel-configs/mail", json={"from_name": "Shop"})
    assert r.json()["rate_limit"] == {"per_day": 900}  # kept by an update that leaves it out
    r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": None})
    assert r.json()["rate_limit"] is None
    for bad, field in [
        ({"per_second": 0}, "rate_limit.per_second"),
        ({"per_second": 10**7}, "rate_limit.per_second"),
        ({"per_day": "many"}, "rate_limit.per_day"),
        ({"per_hour": 5}, "rate_limit.per_hour"),
        ([5], "rate_limit"),
    ]:
        r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": bad})
        assert_problem(r, 400, field)
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
