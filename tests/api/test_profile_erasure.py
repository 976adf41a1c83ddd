"""Deleting a profile erases what the README says it does, and keeps what it says stays."""

from __future__ import annotations

from typing import Any

import httpx

from helpers import forbid_server_errors, trigger, wait_status
from profile_helpers import event_based, profile_event, put_profile
from txmsg.testing import FakeSMTPServer

RECORDS = "/api/v1/message-export/records"


async def _records(admin: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await admin.get(RECORDS)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_deleting_a_profile_erases_its_export_records(
    server: Any, smtp: FakeSMTPServer
) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(
        admin, smtp, reconciliation={"from": "ctx.order", "to": "profile_id"}
    )
    receipt = await event_based(admin)
    r = await admin.patch("/api/v1/channel-configs/mail", json={"message_export": True})
    assert r.status_code == 200, r.text
    await put_profile(admin, "gone", email="gone@example.org", first_name="Gone")
    await put_profile(admin, "kept", email="kept@example.org", first_name="Kept")
    sent = {}
    for who in ("gone", "kept"):
        accepted = await trigger(admin, event, {"ctx": {"order": who}})
        await wait_status(admin, accepted["href"], "processed")
        sent[who] = accepted["PKey"]
    # An event-based message to the same address: not linked to the profile, so it stays.
    plain = await trigger(admin, receipt, {"email": "gone@example.org", "ctx": {"firstName": "G"}})
    await wait_status(admin, plain["href"], "processed")
    await smtp.wait_for(3)
    before = await _records(admin)
    assert {x["messageID"] for x in before} == {sent["gone"], sent["kept"], plain["PKey"]}

    assert (await admin.delete("/api/v1/profiles/gone")).status_code == 204
    after = await _records(admin)
    assert {x["messageID"] for x in after} == {sent["kept"], plain["PKey"]}
    assert all(x.get("profileID") != "gone" for x in after)
    # The event itself stays (its status), unlinked from the profile.
    r = await admin.get(f"/rest/mc/{event}/{sent['gone']}")
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
