"""An address is suppressed whatever the case of its local part: mailbox providers read
`Ada@example.org` and `ada@example.org` as one mailbox, so a bounce or a denylist entry of one
holds the other."""

from __future__ import annotations

from helpers import live_event, trigger, wait_status
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

WHY = "/api/v1/suppressions/email/{}"


async def test_a_hard_bounce_holds_the_address_in_any_case(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    sent = await trigger(
        admin, event_id, {"email": "Ada.Byron@example.org", "ctx": {"firstName": "Ada"}}
    )
    await wait_status(admin, sent["href"], "processed")
    feedback = {"items": [{"PKey": sent["PKey"], "type": "bounce", "bounce": "hard"}]}
    assert (await admin.post("/api/v1/feedback", json=feedback)).status_code == 202

    again = await trigger(
        admin, event_id, {"email": "ada.byron@example.org", "ctx": {"firstName": "Ada"}}
    )
    status = await wait_status(admin, again["href"], "ignored")
    assert status["reason"] == "typology:quarantine"
    why = (await admin.get(WHY.format("ADA.BYRON@example.org"))).json()
    assert [r["reason"] for r in why["reasons"]] == ["hard_bounce"], why
    r = await admin.delete("/api/v1/quarantine/email/ada.BYRON@example.org")
    assert r.status_code == 204, r.text
    third = await trigger(
        admin, event_id, {"email": "Ada.Byron@example.org", "ctx": {"firstName": "Ada"}}
    )
    await wait_status(admin, third["href"], "processed")


async def test_a_denylist_entry_holds_the_address_in_any_case(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await profile_event(
        admin, smtp, reconciliation={"from": "ctx.id", "to": "profile_id"}
    )
    entry = {"channel": "email", "address": "Grace@Example.org", "reason": "asked by phone"}
    r = await admin.post("/api/v1/denylist", json=entry)
    assert r.status_code == 201, r.text
    await put_profile(admin, "g1", email="grace@example.org", first_name="Grace")
    held = await trigger(admin, event_id, {"ctx": {"id": "g1"}})
    status = await wait_status(admin, held["href"], "ignored")
    assert status["reason"] == "typology:denylist"
    # Two spellings of one address are one entry.
    r = await admin.post("/api/v1/denylist", json={**entry, "address": "GRACE@example.org"})
    assert r.status_code in (200, 201), r.text
    listed = (await admin.get("/api/v1/suppressions", params={"reason": "denylist"})).json()
    assert [i["address"] for i in listed["items"]] == ["grace@example.org"]
    r = await admin.delete("/api/v1/denylist/email/GRACE@EXAMPLE.ORG")
    assert r.status_code == 204, r.text
    sent = await trigger(admin, event_id, {"ctx": {"id": "g1"}})
    await wait_status(admin, sent["href"], "processed")
