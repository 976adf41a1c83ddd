"""Per-language variants of a message, test profiles and proofs, end to end."""

from __future__ import annotations

import asyncio

from helpers import assert_problem, create_key, forbid_server_errors, trigger, wait_status
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}
DRAFT = {
    "subject": "Hello {{ profile.first_name }}",
    "text": "Your order {{ ctx.order }}",
    "html": "<p>Your order {{ ctx.order }}</p>",
    "variants": {
        "fr": {
            "subject": "Bonjour {{ profile.first_name }}",
            "text": "Votre commande {{ ctx.order }}",
        },
        "fr-ca": {"subject": "Allô {{ profile.first_name }}", "text": "Commande {{ ctx.order }}"},
    },
}


async def _publish(client, event: str, draft: dict) -> None:
    r = await client.put(f"/api/v1/messages/{event}/draft", json=draft)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/messages/{event}/publish", json={"ctx": {"order": "X"}})
    assert r.status_code == 201, r.text


async def test_language_variants(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await _publish(admin, event, DRAFT)
    got = (await admin.get(f"/api/v1/messages/{event}")).json()
    assert set(got["published"]["variants"]) == {"fr", "fr-ca"}
    r = await admin.post(
        f"/api/v1/messages/{event}/preview", json={"ctx": {"order": "7"}, "language": "fr"}
    )
    assert r.json()["subject"] == "Bonjour Sample"

    for pid, language in (
        ("fr", "fr"),
        ("ca", "fr-CA"),
        ("be", "fr-BE"),
        ("de", "de"),
        ("x", None),
    ):
        await put_profile(
            admin, pid, email=f"{pid}@example.org", first_name="Zoé", language=language
        )
    expected = {
        "fr@example.org": ("Bonjour Zoé", "Votre commande 1"),
        "ca@example.org": ("Allô Zoé", "Commande 1"),
        "be@example.org": ("Bonjour Zoé", "Votre commande 1"),  # fr-be falls back to fr
        "de@example.org": ("Hello Zoé", "Your order 1"),  # no German variant: the default
        "x@example.org": ("Hello Zoé", "Your order 1"),
    }
    accepted = [
        await trigger(admin, event, {"ctx": {"id": pid, "order": "1"}})
        for pid in ("fr", "ca", "be", "de", "x")
    ]
    for a in accepted:
        await wait_status(admin, a["href"], "processed")
    mails = await smtp.wait_for(5)
    seen = {m.rcpt_tos[0]: (m.message["Subject"], (m.text or "").strip()) for m in mails}
    assert seen == expected

    broken = {**DRAFT, "variants": {"fr": {"subject": "x", "html": "{{ ctx.order "}}}
    r = await admin.put(f"/api/v1/messages/{event}/draft", json=broken)
    assert_problem(r, 422, "variants.fr.html")
    r = await admin.put(
        f"/api/v1/messages/{event}/draft",
        json={**DRAFT, "variants": {"FR!": DRAFT["variants"]["fr"]}},
    )
    assert_problem(r, 400, "variants.FR!")
    # A variant that does not render with the sample data is refused at publish.
    needs = {**DRAFT, "variants": {"fr": {"subject": "{{ ctx.missing }}", "text": "t"}}}
    r = await admin.put(f"/api/v1/messages/{event}/draft", json=needs)
    assert r.status_code == 200
    r = await admin.post(f"/api/v1/messages/{event}/publish", json={"ctx": {"order": "1"}})
    assert_problem(r, 422, "variants.fr.subject")


async def test_test_profiles_and_proofs(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    marketer = forbid_server_errors(server.client(await create_key(admin, "marketer")))
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    await _publish(marketer, event, DRAFT)
    await put_profile(admin, "real", email="real@example.org", first_name="Real")
    r = await admin.post(
        "/api/v1/fatigue-rules",
        json={"name": "one", "channel": "all", "max_messages": 1, "period": "P1D"},
    )
    assert r.status_code == 201

    tester = {
        "eventId": event,
        "ctx": {"order": "T-1"},
        "profile": {"first_name": "Tess", "language": "fr"},
    }
    r = await marketer.put("/api/v1/test-profiles/french", json=tester)
    assert r.status_code == 201, r.text
    assert r.json()["profile"]["first_name"] == "Tess"
    assert (await marketer.put("/api/v1/test-profiles/french", json=tester)).status_code == 200
    bad = await marketer.put("/api/v1/test-profiles/bad", json={**tester, "ctx": {"order": 5}})
    assert_problem(bad, 422, "ctx.order")  # the event's declared fields refuse it
    # Invalid by the spec as well: its 400 first.
    both = {**tester, "ctx": {"order": 5}, "profile": 5}
    assert_problem(await marketer.put("/api/v1/test-profiles/bad", json=both), 400, "profile")
    bad = await marketer.put(
        "/api/v1/test-profiles/bad", json={**tester, "profile": {"email": "nope"}}
    )
    assert_problem(bad, 400, "profile.email")
    listed = (await marketer.get("/api/v1/test-profiles")).json()["items"]
    assert [t["name"] for t in listed] == ["french"]

    r = await marketer.post(
        f"/api/v1/messages/{event}/proof",
        json={"test_profile": "french", "addresses": ["qa1@example.org", "qa2@example.org"]},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["variant"] == "fr"
    assert [x["status"] for x in answer["results"]] == ["sent", "sent"]
    mails = await smtp.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in mails) == ["qa1@example.org", "qa2@example.org"]
    assert {m.message["Subject"] for m in mails} == {"[Proof] Bonjour Tess"}
    assert mails[0].message["X-Txmsg-Proof"] == "true"
    assert (mails[0].text or "").strip() == "Votre commande T-1"

    # Proofs are not counted by fatigue rules: the real profile still gets its one message.
    first = await trigger(admin, event, {"ctx": {"id": "real", "order": "1"}})
    await wait_status(admin, first["href"], "processed")
    second = await trigger(admin, event, {"ctx": {"id": "real", "order": "2"}})
    await wait_status(admin, second["href"], "ignored")
    r = await admin.get("/api/v1/fatigue-rules/one/report")
    assert r.json()["days"][0]["excluded"] == 1

    smtp.fail_next(550, "5.1.1 no such user")
    r = await marketer.post(
        f"/api/v1/messages/{event}/proof",
        json={"test_profile": "french", "addresses": ["gone@example.org"], "version": "published"},
    )
    assert r.json()["results"][0]["status"] == "failed"
    await asyncio.sleep(0)
    assert (await admin.get("/api/v1/quarantine")).json()["items"] == []  # a proof is no bounce

    proof = f"/api/v1/messages/{event}/proof"
    assert_problem(
        await marketer.post(proof, json={"test_profile": "french", "addresses": []}),
        400,
        "addresses",
    )
    assert_problem(
        await marketer.post(proof, json={"test_profile": "french", "addresses": ["x"]}),
        400,
        "addresses[0]",
    )
    assert_problem(
        await marketer.post(proof, json={"test_profile": "nope", "addresses": ["a@example.org"]}),
        404,
    )
    assert (await marketer.delete("/api/v1/test-profiles/french")).status_code == 204
    assert_problem(await marketer.get("/api/v1/test-profiles/french"), 404)
    await marketer.aclose()


async def test_variants_are_looked_up_one_subtag_at_a_time(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    draft = {
        "subject": "Hello",
        "text": "Hello",
        "variants": {
            "zh-hant": {"subject": "繁體", "text": "t"},
            "zh": {"subject": "中文", "text": "t"},
            "sr-latn": {"subject": "Zdravo", "text": "t"},
        },
    }
    await _publish(admin, event, draft)
    r = await admin.post(f"/api/v1/messages/{event}/preview", json={"language": "zh-Hant-TW"})
    assert r.json()["subject"] == "繁體", r.text
    profiles = {"tw": "zh-Hant-TW", "cn": "zh-CN", "rs": "sr-Latn-RS", "cy": "sr-Cyrl-RS"}
    for pid, language in profiles.items():
        await put_profile(admin, pid, email=f"{pid}@example.org", language=language)
        accepted = await trigger(admin, event, {"ctx": {"id": pid, "order": "1"}})
        await wait_status(admin, accepted["href"], "processed")
    mails = await smtp.wait_for(4)
    assert {m.rcpt_tos[0]: m.message["Subject"] for m in mails} == {
        "tw@example.org": "繁體",  # zh-hant-tw, then zh-hant
        "cn@example.org": "中文",
        "rs@example.org": "Zdravo",  # sr-latn-rs, then sr-latn
        "cy@example.org": "Hello",  # neither sr-cyrl nor sr: the default
    }
