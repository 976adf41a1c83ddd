"""A proof to an address on the suppression list is refused, whatever the reason: nothing sent."""

from __future__ import annotations

from helpers import assert_problem, create_key, forbid_server_errors, trigger, wait_status
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}
# Details an entry holds that are for admins only: never in a marketer's answer.
BOUNCE_REPLY = "550 5.1.1 relay mx7.corp.internal: user gone"
ADMIN_WORDS = "legal hold, case 4711"


async def _sent(admin, smtp: FakeSMTPServer, event: str, pid: str, email: str) -> str:
    """A live message sent to the profile `pid` at `email`; returns its PKey."""
    await put_profile(admin, pid, email=email, first_name=pid)
    accepted = await trigger(admin, event, {"ctx": {"id": pid, "order": "1"}})
    await wait_status(admin, accepted["href"], "processed")
    return str(accepted["PKey"])


async def _feedback(admin, report: dict) -> None:
    r = await admin.post("/api/v1/feedback", json=report)
    assert r.status_code == 202, r.text


async def test_proofs_to_suppressed_addresses_are_refused(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    marketer = forbid_server_errors(server.client(await create_key(admin, "marketer")))
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    r = await marketer.put("/api/v1/test-profiles/qa", json={"eventId": event, "ctx": {}})
    assert r.status_code == 201, r.text

    # One address per reason: a hard bounce and a spam complaint reported on live sends, an
    # opted-out profile, an admin's denylist entry.
    gone = await _sent(admin, smtp, event, "gone", "Gone@example.org")
    angry = await _sent(admin, smtp, event, "angry", "angry@example.org")
    await smtp.wait_for(2)
    await _feedback(
        admin, {"PKey": gone, "type": "bounce", "bounce": "hard", "reason": BOUNCE_REPLY}
    )
    await _feedback(admin, {"PKey": angry, "type": "spam"})
    await put_profile(admin, "quit", email="Quit@example.org", email_opt_out=True)
    r = await admin.post(
        "/api/v1/denylist",
        json={"channel": "email", "address": "blocked@example.org", "reason": ADMIN_WORDS},
    )
    assert r.status_code in (200, 201), r.text
    smtp.clear()
    connections = smtp.connections_opened

    proof = f"/api/v1/messages/{event}/proof"
    # Matched whatever the case of the local part; the address beside it gets nothing either.
    r = await marketer.post(
        proof, json={"test_profile": "qa", "addresses": ["qa@example.org", "GONE@example.org"]}
    )
    body = assert_problem(r, 422, "addresses[1]")
    assert [e["field"] for e in body["errors"]] == ["addresses[1]"]
    assert "hard_bounce" in body["errors"][0]["detail"]
    assert "mx7" not in r.text and "5.1.1" not in r.text  # the bounce reply is for admins

    expected = {
        "angry@example.org": "spam_complaint",
        "QUIT@example.org": "unsubscribe",
        "Blocked@example.org": "denylist",
    }
    for address, reason in expected.items():
        r = await marketer.post(proof, json={"test_profile": "qa", "addresses": [address]})
        body = assert_problem(r, 422, "addresses[0]")
        assert reason in body["errors"][0]["detail"], body
        assert "4711" not in r.text and "profile quit" not in r.text

    # Every suppressed address of a request is named, each by its place.
    r = await marketer.post(
        proof,
        json={
            "test_profile": "qa",
            "addresses": ["blocked@example.org", "qa@example.org", "angry@example.org"],
            "version": "published",
        },
    )
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["addresses[0]", "addresses[2]"]
    assert [e["pointer"] for e in body["errors"]] == ["/addresses/0", "/addresses/2"]

    assert smtp.messages == [] and smtp.connections_opened == connections  # nothing sent
    assert smtp.rejected == 0

    # No override: once an admin removes the entry, the proof goes.
    r = await admin.delete("/api/v1/quarantine/email/gone@example.org")
    assert r.status_code == 204, r.text
    r = await marketer.post(proof, json={"test_profile": "qa", "addresses": ["GONE@example.org"]})
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["sent"]
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["GONE@example.org"]
    await marketer.aclose()
