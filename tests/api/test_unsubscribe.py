"""Unsubscribe links of profile-based emails: RFC 8058 one-click, the page, forged tokens."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from helpers import assert_problem, trigger, wait_status
from profile_helpers import event_based, profile_event, put_profile
from txmsg.core.delivery import Interaction
from txmsg.core.unsubscribe import UnsubscribeClaim, make_token
from txmsg.store.delivery_log import for_event
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


async def _mail_link(server, smtp: FakeSMTPServer, event: str, profile_id: str, n: int):
    accepted = await trigger(server.admin, event, {"ctx": {"id": profile_id}})
    await wait_status(server.admin, accepted["href"], "processed")
    mail = (await smtp.wait_for(n))[n - 1]
    header = mail.message["List-Unsubscribe"]
    assert re.fullmatch(r"<http://localhost:8025/unsubscribe/[A-Za-z0-9_.-]+>", header), header
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header[1:-1]
    assert mail.html is not None and f"href='{url}'" in mail.html  # {{ unsubscribe_url }}
    return accepted["PKey"], urlsplit(url).path


async def _log(server, pkey: str):
    return await server.app.state.txmsg.db.read(for_event, pkey)


async def test_one_click_and_page_unsubscribe(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "ada", email="ada@example.org", first_name="Ada")
    await put_profile(admin, "bob", email="bob@example.org", first_name="Bob")

    # One-click (RFC 8058): a POST with List-Unsubscribe=One-Click, no API key.
    pkey, path = await _mail_link(server, smtp, event, "ada", 1)
    r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert r.status_code == 200, r.text
    assert (await admin.get("/api/v1/profiles/ada")).json()["email_opt_out"] is True
    [entry] = await _log(server, pkey)
    assert entry.kind == Interaction.UNSUBSCRIBED and entry.event_id == event
    assert entry.detail == {"channel": "email", "method": "one-click"}
    r = await anon.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert r.status_code == 200 and len(await _log(server, pkey)) == 1  # logged once
    later = await trigger(admin, event, {"ctx": {"id": "ada"}})
    assert (await wait_status(admin, later["href"], "ignored"))["reason"] == (
        "typology:opt_out:email"
    )

    # The page: GET only shows it (link scanners unsubscribe nobody), its button POSTs.
    pkey, path = await _mail_link(server, smtp, event, "bob", 2)
    r = await anon.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in r.text
    assert (await admin.get("/api/v1/profiles/bob")).json()["email_opt_out"] is False
    r = await anon.post(path, data={"confirm": "yes"})
    assert r.status_code == 200 and "Unsubscribed" in r.text
    assert (await admin.get("/api/v1/profiles/bob")).json()["email_opt_out"] is True
    [entry] = await _log(server, pkey)
    assert entry.detail == {"channel": "email", "method": "page"}

    # Event-based messages carry no unsubscribe link.
    plain = await event_based(admin)
    sent = await trigger(admin, plain, {"email": "bob@example.org", "ctx": {"firstName": "B"}})
    await wait_status(admin, sent["href"], "processed")
    mail = (await smtp.wait_for(3))[2]
    assert mail.message["List-Unsubscribe"] is None
    await anon.aclose()


async def test_forged_tokens_are_refused(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    anon = server.client()
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await put_profile(admin, "ada", email="ada@example.org", first_name="Ada")
    await put_profile(admin, "eve", email="eve@example.org", first_name="Eve")
    _, path = await _mail_link(server, smtp, event, "eve", 1)
    token = path.rsplit("/", 1)[1]
    payload, signature = token.split(".")
    pkey = base64.urlsafe_b64decode(payload + "==").split(b"\0")[2].decode()

    # Eve's signature on a payload naming Ada; a token signed with another secret; junk.
    other = base64.urlsafe_b64encode(f"email\0ada\0{pkey}".encode()).rstrip(b"=").decode()
    forged = [
        f"{other}.{signature}",
        make_token("not-the-server-secret", UnsubscribeClaim("email", "ada", pkey)),
        "junk",
        f"{payload}.{signature[:-2]}",
    ]
    for bad in forged:
        for r in (
            await anon.get(f"/unsubscribe/{bad}"),
            await anon.post(
                f"/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
            ),
        ):
            assert_problem(r, 404)
    for pid in ("ada", "eve"):
        assert (await admin.get(f"/api/v1/profiles/{pid}")).json()["email_opt_out"] is False
    await anon.aclose()
