"""The suppression list over HTTP: why an address is not sent to, listing, CSV out and in."""

from __future__ import annotations

import base64
import csv
import io

import orjson

from helpers import assert_problem, forbid_server_errors, live_event, trigger, wait_status
from profile_helpers import put_profile
from txmsg.testing import FakeSMTPServer

WHY = "/api/v1/suppressions/email/{}"


async def _sent(admin, event_id: str, email: str) -> str:
    accepted = await trigger(admin, event_id, {"email": email, "ctx": {"firstName": "A"}})
    await wait_status(admin, accepted["href"], "processed")
    return accepted["PKey"]


async def test_why_listing_and_csv(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event_id = await live_event(admin, smtp)
    hard = await _sent(admin, event_id, "hard@example.org")
    spam = await _sent(admin, event_id, "spam@example.org")
    feedback = {
        "items": [
            {"PKey": hard, "type": "bounce", "bounce": "hard", "reason": "550 5.1.1 no user"},
            {"PKey": spam, "type": "spam"},
        ]
    }
    assert (await admin.post("/api/v1/feedback", json=feedback)).status_code == 202
    r = await admin.post(
        "/api/v1/denylist",
        json={"channel": "email", "address": "admin@Example.ORG", "reason": "asked by phone"},
    )
    assert r.status_code == 201, r.text
    await put_profile(admin, "u1", email="gone@example.org", email_opt_out=True)
    await put_profile(admin, "u2", email="kept@example.org")

    expected = {
        "hard@example.org": ["hard_bounce"],
        "spam@example.org": ["spam_complaint"],
        "admin@example.org": ["denylist"],
        "gone@example.org": ["unsubscribe"],
        "fine@example.org": [],
    }
    for address, reasons in expected.items():
        r = await admin.get(WHY.format(address))
        assert r.status_code == 200, r.text
        answer = r.json()
        assert [x["reason"] for x in answer["reasons"]] == reasons, answer
        assert answer["suppressed"] is bool(reasons)
    hard_why = (await admin.get(WHY.format("hard@EXAMPLE.org"))).json()
    assert hard_why["address"] == "hard@example.org"
    assert hard_why["reasons"][0]["detail"] == "550 5.1.1 no user"
    assert hard_why["reasons"][0]["until"] is None  # held until released
    assert (await admin.get(WHY.format("admin@example.org"))).json()["reasons"][0][
        "detail"
    ] == "asked by phone"
    assert_problem(await admin.get("/api/v1/suppressions/fax/x"), 400, "channel")
    assert_problem(await admin.get(WHY.format("not-an-address")), 422, "address")

    # Paged listing, in (channel, address, reason) order, with filters.
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        page = (await admin.get("/api/v1/suppressions", params=params)).json()
        seen += [i["address"] for i in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(a for a, reasons in expected.items() if reasons)
    only = await admin.get("/api/v1/suppressions", params={"reason": "spam_complaint"})
    assert [i["address"] for i in only.json()["items"]] == ["spam@example.org"]
    later = await admin.get("/api/v1/suppressions", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["items"] == []
    sms = await admin.get("/api/v1/suppressions", params={"channel": "sms"})
    assert sms.json()["items"] == []
    for bad in ({"reason": "x"}, {"channel": "fax"}, {"since": "yesterday"}, {"limit": "0"}):
        assert_problem(await admin.get("/api/v1/suppressions", params=bad), 400, next(iter(bad)))
    # Any string is a cursor by the spec; one this server did not issue is a 422.
    assert_problem(await admin.get("/api/v1/suppressions", params={"after": "!!"}), 422, "after")

    # CSV export; then an import puts new addresses on the denylist, keeps existing entries.
    r = await admin.get("/api/v1/suppressions.csv", params={"channel": "email"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(x["address"], x["reason"]) for x in rows} == {
        (a, reasons[0]) for a, reasons in expected.items() if reasons
    }
    upload = (
        "channel,address,detail\r\n"
        'email,New@example.org,=HYPERLINK("x")\r\n'
        "email,admin@example.org,other words\r\n"
        "email,not an address,\r\n"
        "fax,x@example.org,\r\n"
        "sms,+14155550123,\r\n"
    )
    r = await admin.post(
        "/api/v1/suppressions.csv", content=upload, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["added"], answer["unchanged"], answer["rejected"]) == (2, 1, 2)
    assert [(x["line"], x["field"]) for x in answer["rejections"]] == [
        (4, "address"),
        (5, "channel"),
    ]
    assert (await admin.get(WHY.format("admin@example.org"))).json()["reasons"][0][
        "detail"
    ] == "asked by phone"
    r = await admin.get("/api/v1/suppressions/sms/+14155550123")
    assert [x["reason"] for x in r.json()["reasons"]] == ["denylist"]
    exported = (await admin.get("/api/v1/suppressions.csv")).text
    assert "'=HYPERLINK" in exported  # a formula is never exported as one

    r = await admin.post(
        "/api/v1/suppressions.csv", content="a,b\r\n1,2\r\n", headers={"content-type": "text/csv"}
    )
    assert_problem(r, 400, "body")
    r = await admin.post(
        "/api/v1/suppressions.csv", content="{}", headers={"content-type": "application/json"}
    )
    assert_problem(r, 415)


async def test_paging_lists_every_profile_opted_out_with_one_address(server) -> None:
    """Two profiles opted out with the same address are two entries of one channel, address
    and reason: a page ending between them must not skip the second."""
    admin = forbid_server_errors(server.admin)
    for profile_id in ("p1", "p2", "p3"):
        await put_profile(admin, profile_id, email="shared@example.org", email_opt_out=True)
    await put_profile(admin, "p4", email="zed@example.org", email_opt_out=True)
    details: list[str] = []
    after = None
    while True:
        params = {"limit": "1", **({"after": after} if after else {})}
        r = await admin.get("/api/v1/suppressions", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        details += [i["detail"] for i in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert details == ["profile p1", "profile p2", "profile p3", "profile p4"]

    # A cursor of an earlier version named (channel, address, reason): it resumes past them.
    old = base64.urlsafe_b64encode(
        orjson.dumps(["email", "shared@example.org", "unsubscribe"])
    ).decode()
    r = await admin.get("/api/v1/suppressions", params={"after": old})
    assert [i["detail"] for i in r.json()["items"]] == ["profile p4"]
    # A cursor no server issued, with a NUL (PostgreSQL's text refuses one): a 422, not a 500.
    nul = base64.urlsafe_b64encode(orjson.dumps(["email", "a\x00", "x", "y"])).decode()
    assert_problem(await admin.get("/api/v1/suppressions", params={"after": nul}), 422, "after")
