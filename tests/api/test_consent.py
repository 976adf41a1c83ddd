"""Consent over the real HTTP API: what a profile write (PUT, NDJSON or CSV import) may do
to an opt-out the person recorded, old unsubscribe links after a profile's deletion, RFC 8058
one-click as multipart/form-data, and one `unsubscribed` per message."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from helpers import delivery_log_answer, trigger, wait_status
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
CSV = {"content-type": "text/csv"}
NDJSON = {"content-type": "application/x-ndjson"}


async def _link(server: Any, smtp: FakeSMTPServer, event: str, profile_id: str, n: int):
    """(PKey, unsubscribe path) of the n-th mail, sent to `profile_id`."""
    accepted = await trigger(server.admin, event, {"ctx": {"id": profile_id}})
    await wait_status(server.admin, accepted["href"], "processed")
    header = (await smtp.wait_for(n))[n - 1].message["List-Unsubscribe"]
    return accepted["PKey"], urlsplit(header[1:-1]).path


async def _opted_out(admin: Any, profile_id: str) -> bool:
    r = await admin.get(f"/api/v1/profiles/{profile_id}")
    assert r.status_code == 200, r.text
    value: bool = r.json()["email_opt_out"]
    return value


async def _import(admin: Any, body: bytes, headers: dict[str, str], **params: str) -> Any:
    r = await admin.post("/api/v1/profiles:import", content=body, headers=headers, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == 0, r.text
    return r.json()


async def _unsubscribed_entries(admin: Any, event: str, pkey: str) -> list[dict[str, Any]]:
    items = (await delivery_log_answer(admin, event, pkey))["items"]
    return [e for e in items if e["kind"] == "unsubscribed"]


async def test_a_reimport_keeps_the_persons_unsubscribe(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "u1", email="u1@example.com", first_name="U1")
    _, path = await _link(server, smtp, event, "u1", 1)
    r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert r.status_code == 200, r.text
    assert await _opted_out(admin, "u1")

    # Rows that do not name the opt-out (column absent, cell empty, field absent) keep it.
    await _import(admin, b"profile_id,email,first_name\nu1,u1@example.com,U1\n", CSV)
    assert await _opted_out(admin, "u1")
    await _import(admin, b"profile_id,email,email_opt_out\nu1,u1@example.com,\n", CSV)
    assert await _opted_out(admin, "u1")
    await _import(admin, b'{"profile_id": "u1", "email": "u1@example.com"}\n', NDJSON)
    assert await _opted_out(admin, "u1")
    await put_profile(admin, "u1", email="u1@example.com", first_name="U1")
    assert await _opted_out(admin, "u1")

    # An explicit false does not undo the person's own act either; the answer says so.
    answer = await _import(admin, b"profile_id,email,email_opt_out\nu1,u1@example.com,false\n", CSV)
    assert answer["opt_outs_kept"] == 1 and answer["updated"] == 1
    line = b'{"profile_id": "u1", "email": "u1@example.com", "email_opt_out": false}\n'
    assert (await _import(admin, line, NDJSON))["opt_outs_kept"] == 1
    assert (await put_profile(admin, "u1", email="u1@example.com", email_opt_out=False))[
        "email_opt_out"
    ] is True
    assert await _opted_out(admin, "u1")

    # Still on the suppression list, and the next trigger is not sent.
    r = await admin.get("/api/v1/suppressions/email/u1@example.com")
    assert [e["reason"] for e in r.json()["reasons"]] == ["unsubscribe"]
    later = await trigger(admin, event, {"ctx": {"id": "u1"}})
    ignored = await wait_status(admin, later["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:email"
    assert len(smtp.messages) == 1

    # Re-subscribing is an explicit act the caller vouches for: ?resubscribe=true.
    answer = await _import(admin, b"profile_id,email_opt_out\nu1,no\n", CSV, resubscribe="true")
    assert answer["opt_outs_kept"] == 0
    assert not await _opted_out(admin, "u1")
    await anon.aclose()


async def test_an_admins_opt_out_is_cleared_by_a_write(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await put_profile(admin, "a1", email="a1@example.com", email_opt_out=True)
    await _import(admin, b"profile_id,email_opt_out\na1,\n", CSV)  # empty: kept
    assert await _opted_out(admin, "a1")
    await _import(admin, b'{"profile_id": "a1", "email_opt_out": false}\n', NDJSON)
    assert not await _opted_out(admin, "a1")
    await _import(admin, b"profile_id,email_opt_out\na1,yes\n", CSV)
    assert await _opted_out(admin, "a1")
    assert not (await put_profile(admin, "a1", email_opt_out=False))["email_opt_out"]
    r = await admin.put("/api/v1/profiles/a1?resubscribe=maybe", json={})
    assert r.status_code == 400, r.text


async def test_an_old_link_does_not_unsubscribe_a_new_profile(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "u1", email="u1@example.com")
    _, path = await _link(server, smtp, event, "u1", 1)

    # Deleted: nothing is recorded, and neither the page nor the answer claims otherwise.
    assert (await admin.delete("/api/v1/profiles/u1")).status_code == 204
    for r in (
        await anon.get(path),
        await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK),
        await anon.post(path, data={"confirm": "yes"}),
    ):
        assert r.status_code == 410, r.text
        assert "no longer valid" in r.text and "Unsubscribed" not in r.text
        assert "<form" not in r.text

    # Created again under the same id with another address: the old link is not theirs.
    await put_profile(admin, "u1", email="someone-else@example.com")
    r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert r.status_code == 410, r.text
    assert not await _opted_out(admin, "u1")
    later = await trigger(admin, event, {"ctx": {"id": "u1"}})
    await wait_status(admin, later["href"], "processed")
    await anon.aclose()


async def test_a_link_outlives_an_address_change(server, smtp: FakeSMTPServer) -> None:
    """The token names the person's profile: a new address of the same profile keeps the
    links of the messages they received."""
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "u2", email="old@example.com")
    _, path = await _link(server, smtp, event, "u2", 1)
    await put_profile(admin, "u2", email="new@example.com")
    r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert r.status_code == 200 and "Unsubscribed" in r.text
    assert await _opted_out(admin, "u2")
    await anon.aclose()


async def test_one_click_as_multipart_form_data(server, smtp: FakeSMTPServer) -> None:
    """RFC 8058's own example posts multipart/form-data."""
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "m1", email="m1@example.com")
    pkey, path = await _link(server, smtp, event, "m1", 1)
    body = (
        b"--XYZ\r\n"
        b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
        b"\r\n"
        b"One-Click\r\n"
        b"--XYZ--\r\n"
    )
    r = await anon.post(
        path, content=body, headers={"content-type": "multipart/form-data; boundary=XYZ"}
    )
    assert r.status_code == 200, r.text
    [entry] = await _unsubscribed_entries(admin, event, pkey)
    assert entry["detail"] == {"channel": "email", "method": "one-click"}
    # Another field of a multipart body is the page's button, not one-click.
    await put_profile(admin, "m2", email="m2@example.com")
    pkey, path = await _link(server, smtp, event, "m2", 2)
    body = b'--b\r\nContent-Disposition: form-data; name="confirm"\r\n\r\nyes\r\n--b--\r\n'
    r = await anon.post(
        path, content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 200, r.text
    [entry] = await _unsubscribed_entries(admin, event, pkey)
    assert entry["detail"]["method"] == "page"
    await anon.aclose()


async def test_unsubscribed_once_per_message(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "o1", email="o1@example.com")
    pkey, path = await _link(server, smtp, event, "o1", 1)
    for _ in range(3):  # unsubscribed, re-subscribed, unsubscribed again with the same link
        r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
        assert r.status_code == 200, r.text
        r = await admin.put(
            "/api/v1/profiles/o1?resubscribe=true",
            json={"email": "o1@example.com", "email_opt_out": False},
        )
        assert r.status_code == 200 and r.json()["email_opt_out"] is False
    assert len(await _unsubscribed_entries(admin, event, pkey)) == 1
    r = await admin.get(f"/api/v1/reports/{event}")
    assert r.status_code == 200, r.text
    assert r.json()["total"]["unsubscribed"] == 1
    await anon.aclose()
