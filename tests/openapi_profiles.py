"""The profile-based message operations, for test_openapi's answers-match-the-spec flow."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from txmsg.testing import FakeSMTPServer


async def _poll(chk: Any, client: httpx.AsyncClient, href: str, wanted: set[str]) -> None:
    for _ in range(300):
        state = chk.check(await client.get(href), "/rest/mc/{eventId}/{PKey}", 200)
        if state["status"] in wanted:
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"{href} never became {wanted}")


async def check_profile_operations(
    chk: Any,
    server: Any,
    smtp: FakeSMTPServer,
    marketer: httpx.AsyncClient,
    website: httpx.AsyncClient,
) -> None:
    c = chk.check
    admin = server.admin
    anon = server.client()

    # profiles
    profile = "/api/v1/profiles/{profile_id}"
    ada = {"email": "ada@example.org", "first_name": "Ada", "language": "fr"}
    c(await admin.put("/api/v1/profiles/ada", json=ada), profile, 201)
    c(await admin.put("/api/v1/profiles/ada", json=ada), profile, 200)
    c(await admin.put("/api/v1/profiles/ada", json={"email": "x"}), profile, 400)
    c(await marketer.put("/api/v1/profiles/ada", json=ada), profile, 403)
    c(await admin.get("/api/v1/profiles/ada"), profile, 200)
    c(await admin.get("/api/v1/profiles/nope"), profile, 404)
    c(await admin.get("/api/v1/profiles/bad%20id"), profile, 400)
    profiles = "/api/v1/profiles"
    found = c(await admin.get(profiles, params={"email": "ADA@example.org"}), profiles, 200)
    assert [p["profile_id"] for p in found["items"]] == ["ada"] and found["next_cursor"] is None
    c(await admin.get(profiles, params={"limit": 0}), profiles, 400)
    c(await admin.get(profiles, params={"mobile_phone": "+1000000"}), profiles, 422)
    c(await marketer.get(profiles), profiles, 403)
    imports = "/api/v1/profiles:import"
    rows = b'{"profile_id": "gone", "email": "gone@example.org"}\n{"profile_id": 1}\n'
    ndjson = {"content-type": "application/x-ndjson"}
    report = c(await admin.post(imports, content=rows, headers=ndjson), imports, 200)
    assert (report["created"], report["rejected"]) == (1, 1)
    c(await admin.post(imports, content=b"x", headers={"content-type": "text/plain"}), imports, 415)
    c(
        await admin.post(imports, content=b"age\n1\n", headers={"content-type": "text/csv"}),
        imports,
        400,
    )
    c(await admin.delete("/api/v1/profiles/nope"), profile, 404)

    # a profile-based event and its message
    r = await admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "welcome",
            "channel": "email",
            "channel_config": "mail",
            "target": "profile",
            "reconciliation": {"from": "ctx.id", "to": "profile_id"},
            "fields": [{"name": "id", "type": "string", "required": True}],
        },
    )
    event = c(r, "/api/v1/event-configs", 201)["eventId"]
    c(
        await admin.post(f"/api/v1/event-configs/{event}/publish"),
        "/api/v1/event-configs/{eventId}/publish",
        200,
    )
    draft = {
        "subject": "Hi {{ profile.first_name }}",
        "html": "<a href='https://shop.example.com/'>shop</a>"
        "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        "text": "Hi",
        "variants": {
            "fr": {
                "subject": "Salut {{ profile.first_name }}",
                "html": "<a href='https://shop.example.com/'>boutique</a>"
                "<a href='{{ unsubscribe_url }}'>se désabonner</a>",
                "text": "Salut",
            }
        },
    }
    message = "/api/v1/messages/{eventId}"
    c(await marketer.put(f"/api/v1/messages/{event}/draft", json=draft), message + "/draft", 200)
    rendered = c(
        await marketer.post(
            f"/api/v1/messages/{event}/preview", json={"ctx": {"id": "x"}, "language": "fr"}
        ),
        message + "/preview",
        200,
    )
    assert rendered["subject"] == "Salut Sample"
    published = c(
        await marketer.post(f"/api/v1/messages/{event}/publish", json={"ctx": {"id": "x"}}),
        message + "/publish",
        201,
    )
    assert "fr" in published["variants"]
    c(await marketer.get(f"/api/v1/messages/{event}"), message, 200)

    # denylist
    denylist = "/api/v1/denylist"
    denied = "/api/v1/denylist/{channel}/{address}"
    entry = {"channel": "email", "address": "spam@example.org", "reason": "complaint"}
    c(await admin.post(denylist, json=entry), denylist, 201)
    c(await admin.post(denylist, json={**entry, "channel": "fax"}), denylist, 400)
    assert len(c(await admin.get(denylist), denylist, 200)["items"]) == 1
    c(await admin.delete("/api/v1/denylist/email/spam@example.org"), denied, 204)
    c(await admin.delete("/api/v1/denylist/email/spam@example.org"), denied, 404)
    c(await admin.delete("/api/v1/denylist/fax/x"), denied, 400)

    # fatigue rules
    rules = "/api/v1/fatigue-rules"
    rule = "/api/v1/fatigue-rules/{name}"
    weekly = {"name": "weekly", "channel": "all", "max_messages": 1, "period": "P7D"}
    c(await admin.post(rules, json=weekly), rules, 201)
    c(await admin.post(rules, json=weekly), rules, 409)
    c(await admin.post(rules, json={**weekly, "period": "P1M"}), rules, 400)
    c(await marketer.get(rules), rules, 200)
    c(await marketer.get(f"{rules}/weekly"), rule, 200)
    c(await marketer.get(f"{rules}/nope"), rule, 404)
    c(
        await admin.patch(f"{rules}/weekly", json={"max_messages": {"profile_attribute": "m"}}),
        rule,
        200,
    )
    c(await admin.patch(f"{rules}/weekly", json={"max_messages": 1}), rule, 200)

    # a message to Ada: the unsubscribe link, tracked; a second one is excluded by the rule
    tracked = c(
        await admin.patch(
            "/api/v1/channel-configs/mail", json={"tracking": {"opens": True, "clicks": True}}
        ),
        "/api/v1/channel-configs/{name}",
        200,
    )
    assert tracked["tracking"] == {"opens": True, "clicks": True}
    first = c(
        await website.post(f"/rest/mc/{event}", json={"ctx": {"id": "ada"}}),
        "/rest/mc/{eventId}",
        201,
    )
    await _poll(chk, website, first["href"], {"processed"})
    second = c(
        await website.post(f"/rest/mc/{event}", json={"ctx": {"id": "ada"}}),
        "/rest/mc/{eventId}",
        201,
    )
    await _poll(chk, website, second["href"], {"ignored"})
    days = c(await marketer.get(f"{rules}/weekly/report"), rule + "/report", 200)["days"]
    assert days[0]["excluded"] == 1
    c(await marketer.get(f"{rules}/nope/report"), rule + "/report", 404)
    c(await admin.delete(f"{rules}/weekly"), rule, 204)
    c(await admin.delete(f"{rules}/weekly"), rule, 404)
    mail = next(m for m in smtp.messages if m.message["List-Unsubscribe"])
    assert mail.message["Subject"] == "Salut Ada"
    link = urlsplit(mail.message["List-Unsubscribe"][1:-1]).path
    unsubscribe = "/unsubscribe/{token}"
    page = c(await anon.get(link), unsubscribe, 200)
    assert "<form" in page
    one_click = {"content-type": "application/x-www-form-urlencoded"}
    c(
        await anon.post(link, content=b"List-Unsubscribe=One-Click", headers=one_click),
        unsubscribe,
        200,
    )
    c(await anon.get("/unsubscribe/forged.token"), unsubscribe, 404)
    c(
        await anon.post("/unsubscribe/forged.token", content=b"", headers=one_click),
        unsubscribe,
        404,
    )
    big = b"x" * (server.settings.max_body_bytes + 1)
    c(await anon.post(link, content=big, headers=one_click), unsubscribe, 413)

    # tracking: the open pixel and the click redirect of Ada's message
    assert mail.html is not None
    pixel = re.search(r"http://localhost:8025(/t/o/[^\"']+)", mail.html)
    click = re.search(r"http://localhost:8025(/t/c/[^\"']+)", mail.html)
    assert pixel and click, mail.html
    c(await anon.get(pixel.group(1)), "/t/o/{token}", 200)
    c(await anon.get("/t/o/forged.token"), "/t/o/{token}", 404)
    r = await anon.get(click.group(1))
    c(r, "/t/c/{token}", 302)
    assert r.headers["location"] == "https://shop.example.com/"
    c(await anon.get("/t/c/forged.token"), "/t/c/{token}", 404)
    c(
        await admin.patch("/api/v1/channel-configs/mail", json={"tracking": {"opens": 1}}),
        "/api/v1/channel-configs/{name}",
        400,
    )

    # a hard bounce quarantines; an admin releases
    quarantine = "/api/v1/quarantine"
    released = "/api/v1/quarantine/{channel}/{address}"
    smtp.fail_next(550, "5.1.1 user unknown")
    bounced = c(
        await website.post(f"/rest/mc/{event}", json={"ctx": {"id": "gone"}}),
        "/rest/mc/{eventId}",
        201,
    )
    await _poll(chk, website, bounced["href"], {"deliveryFailed"})
    held = c(await admin.get(quarantine), quarantine, 200)["items"]
    assert [h["address"] for h in held] == ["gone@example.org"]
    # the suppression list says why
    why = "/api/v1/suppressions/{channel}/{address}"
    answer = c(await admin.get("/api/v1/suppressions/email/gone@example.org"), why, 200)
    assert [r["reason"] for r in answer["reasons"]] == ["hard_bounce"]
    c(await admin.get("/api/v1/suppressions/sms/12"), why, 422)  # no number of the sms channel
    c(await marketer.get("/api/v1/suppressions/email/gone@example.org"), why, 403)
    listing = "/api/v1/suppressions"
    page = c(await admin.get(listing, params={"reason": "hard_bounce"}), listing, 200)
    assert [i["address"] for i in page["items"]] == ["gone@example.org"]
    c(await admin.get(listing, params={"reason": "nope"}), listing, 400)
    as_csv = "/api/v1/suppressions.csv"
    assert "gone@example.org" in c(await admin.get(as_csv), as_csv, 200)
    c(await admin.get(as_csv, params={"since": "x"}), as_csv, 400)
    upload = {"content-type": "text/csv"}
    rows = b"channel,address\nemail,blocked@example.org\nemail,x\n"
    imported = c(await admin.post(as_csv, content=rows, headers=upload), as_csv, 200)
    assert (imported["added"], imported["rejected"]) == (1, 1)
    c(await admin.post(as_csv, content=b"a\n1\n", headers=upload), as_csv, 400)
    c(await admin.post(as_csv, content=b"{}", headers={"content-type": "text/plain"}), as_csv, 415)
    c(await admin.delete("/api/v1/quarantine/email/gone@example.org"), released, 204)
    c(await admin.delete("/api/v1/quarantine/email/gone@example.org"), released, 404)
    c(await admin.delete("/api/v1/quarantine/sms/12"), released, 422)
    # a provider reports a later soft bounce of that message by HTTP
    feedback = "/api/v1/feedback"
    soft = {"PKey": bounced["PKey"], "type": "bounce", "bounce": "soft", "reason": "4.2.2 full"}
    assert c(await admin.post(feedback, json=soft), feedback, 202) == {"accepted": 1}
    c(await admin.post(feedback, json={**soft, "bounce": "maybe"}), feedback, 400)
    c(await admin.post(feedback, json={**soft, "PKey": "0" * 26}), feedback, 404)
    c(await marketer.post(feedback, json=soft), feedback, 403)
    c(await anon.post(feedback, json=soft), feedback, 401)
    c(await admin.delete("/api/v1/profiles/gone"), profile, 204)

    # test profiles and proofs
    testers = "/api/v1/test-profiles"
    tester = "/api/v1/test-profiles/{name}"
    sample = {"eventId": event, "ctx": {"id": "t"}, "profile": {"first_name": "Tess"}}
    c(await marketer.put(f"{testers}/tess", json=sample), tester, 201)
    c(await marketer.put(f"{testers}/tess", json=sample), tester, 200)
    c(await marketer.put(f"{testers}/tess", json={**sample, "ctx": {}}), tester, 422)
    c(await marketer.put(f"{testers}/tess", json={**sample, "ctx": 1}), tester, 400)
    c(await marketer.put(f"{testers}/tess", json={**sample, "eventId": "EVTnope"}), tester, 404)
    c(await marketer.get(testers), testers, 200)
    c(await marketer.get(f"{testers}/tess"), tester, 200)
    c(await marketer.get(f"{testers}/bad%20name"), tester, 400)
    proof = "/api/v1/messages/{eventId}/proof"
    body = {"test_profile": "tess", "addresses": ["qa@example.org"]}
    result = c(await marketer.post(f"/api/v1/messages/{event}/proof", json=body), proof, 200)
    assert result["results"][0]["status"] == "sent"
    c(
        await marketer.post(f"/api/v1/messages/{event}/proof", json={**body, "addresses": []}),
        proof,
        400,
    )
    c(await marketer.post("/api/v1/messages/EVTnope/proof", json=body), proof, 404)
    c(
        await marketer.put(
            f"/api/v1/messages/{event}/draft", json={**draft, "text": "{{ ctx.nope }}"}
        ),
        message + "/draft",
        200,
    )
    c(await marketer.post(f"/api/v1/messages/{event}/proof", json=body), proof, 422)
    c(
        await admin.put(
            f"{testers}/other", json={"eventId": "EVTcartAbandonment", "ctx": {"firstName": "A"}}
        ),
        tester,
        201,
    )
    r = await marketer.post(
        f"/api/v1/messages/{event}/proof",
        json={**body, "version": "published", "test_profile": "other"},
    )
    c(r, proof, 400)
    c(await marketer.delete(f"{testers}/tess"), tester, 204)
    c(await marketer.delete(f"{testers}/tess"), tester, 404)
    await anon.aclose()
