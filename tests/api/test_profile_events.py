"""Profile-based events end to end: reconciliation, profile.* in templates, typology rules."""

from __future__ import annotations

import asyncio

from helpers import (
    assert_problem,
    create_event,
    create_sms_channel,
    delivery_log,
    live_event,
    trigger,
    wait_status,
)
from profile_helpers import event_based, profile_event, put_profile
from txmsg.testing import FakeSMTPServer


async def test_reconciled_by_ctx_field_to_profile_id(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event = await profile_event(
        admin, smtp, reconciliation={"from": "ctx.customer", "to": "profile_id"}
    )
    r = await admin.get(f"/api/v1/event-configs/{event}")
    assert r.json()["reconciliation"] == {"from": "ctx.customer", "to": "profile_id"}
    await put_profile(admin, "c-42", email="grace@example.org", first_name="Grace")
    # No email in the trigger: the address is the profile's.
    accepted = await trigger(admin, event, {"ctx": {"customer": "c-42", "order": "A1"}})
    done = await wait_status(admin, accepted["href"], "processed")
    assert done["email"] is None
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["grace@example.org"]
    assert mail.message["Subject"] == "Hello Grace"
    assert mail.text is not None and mail.text.startswith("Hi Grace, order A1")

    missing = await trigger(admin, event, {"ctx": {"customer": "c-43", "order": "A2"}})
    failed = await wait_status(admin, missing["href"], "targetingFailed")
    assert failed["reason"] == "no profile matches profile_id='c-43'"
    no_key = await trigger(admin, event, {"ctx": {"order": "A3"}})
    failed = await wait_status(admin, no_key["href"], "targetingFailed")
    assert failed["reason"] == "the event has no ctx.customer"
    assert len(smtp.messages) == 1


async def test_reconciled_by_email_uses_the_profile(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event = await profile_event(admin, smtp)  # default reconciliation: email -> email
    await put_profile(admin, "p1", email="ada@example.org", first_name="Ada")
    accepted = await trigger(admin, event, {"email": "ada@EXAMPLE.org", "ctx": {"order": "B"}})
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.message["Subject"] == "Hello Ada"
    assert mail.rcpt_tos == ["ada@example.org"]
    stranger = await trigger(admin, event, {"email": "bob@example.org", "ctx": {}})
    failed = await wait_status(admin, stranger["href"], "targetingFailed")
    assert "bob@example.org" in failed["reason"]
    # The configuration is checked when it is written.
    r = await admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "bad",
            "channel": "email",
            "channel_config": "mail",
            "target": "profile",
            "reconciliation": {"from": "phone", "to": "email"},
        },
    )
    assert_problem(r, 400, "reconciliation.from")
    r = await admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "bad",
            "channel": "email",
            "channel_config": "mail",
            "reconciliation": {"from": "email", "to": "email"},
        },
    )
    assert_problem(r, 400, "reconciliation")


async def test_opt_out_and_denylist_ignore_profile_messages(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event = await profile_event(admin, smtp, reconciliation={"from": "ctx.id", "to": "profile_id"})
    await put_profile(admin, "out", email="out@example.org", first_name="O", email_opt_out=True)
    await put_profile(admin, "sms-out", email="in@example.org", first_name="I", sms_opt_out=True)
    await put_profile(admin, "denied", email="denied@example.org", first_name="D")
    r = await admin.post(
        "/api/v1/denylist",
        json={"channel": "email", "address": "denied@EXAMPLE.org", "reason": "complaint"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["address"] == "denied@example.org"
    assert_problem(
        await admin.post("/api/v1/denylist", json={"channel": "email", "address": "x"}),
        422,  # a string, but no address of the channel
        "address",
    )

    out = await trigger(admin, event, {"ctx": {"id": "out"}})
    sms_out = await trigger(admin, event, {"ctx": {"id": "sms-out"}})
    denied = await trigger(admin, event, {"ctx": {"id": "denied"}})
    assert (await wait_status(admin, out["href"], "ignored"))["reason"] == "typology:opt_out:email"
    await wait_status(admin, sms_out["href"], "processed")  # opted out of SMS only
    assert (await wait_status(admin, denied["href"], "ignored"))["reason"] == "typology:denylist"
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["in@example.org"]

    # The denylist does not apply to event-based messages.
    plain = await event_based(admin)
    sent = await trigger(admin, plain, {"email": "denied@example.org", "ctx": {"firstName": "D"}})
    await wait_status(admin, sent["href"], "processed")

    listed = (await admin.get("/api/v1/denylist")).json()["items"]
    assert [(d["channel"], d["address"], d["reason"]) for d in listed] == [
        ("email", "denied@example.org", "complaint")
    ]
    r = await admin.delete("/api/v1/denylist/email/denied@example.org")
    assert r.status_code == 204
    assert_problem(await admin.delete("/api/v1/denylist/email/denied@example.org"), 404)
    again = await trigger(admin, event, {"ctx": {"id": "denied"}})
    await wait_status(admin, again["href"], "processed")


async def test_hard_bounce_quarantines_for_every_message(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    plain = await live_event(admin, smtp, "receipt")
    event = await profile_event(
        admin, smtp, reconciliation={"from": "ctx.id", "to": "profile_id"}, channel=False
    )
    await put_profile(admin, "gone", email="gone@example.org", first_name="G")
    smtp.fail_next(550, "5.1.1 <gone@example.org>: Recipient address rejected: User unknown")
    bounced = await trigger(admin, plain, {"email": "gone@example.org", "ctx": {"firstName": "G"}})
    failed = await wait_status(admin, bounced["href"], "deliveryFailed")
    assert failed["reason"].startswith("550 5.1.1")
    # A permanent refusal that is not about the mailbox quarantines nothing.
    smtp.fail_next(554, "5.7.1 message content rejected")
    spam = await trigger(admin, plain, {"email": "other@example.org", "ctx": {"firstName": "O"}})
    await wait_status(admin, spam["href"], "deliveryFailed")

    r = await admin.get("/api/v1/quarantine")
    assert r.status_code == 200
    [held] = r.json()["items"]
    assert (held["channel"], held["address"]) == ("email", "gone@example.org")
    assert held["reason"].startswith("550 5.1.1") and held["quarantined_at"]

    later = await trigger(admin, plain, {"email": "gone@example.org", "ctx": {"firstName": "G"}})
    profiled = await trigger(admin, event, {"ctx": {"id": "gone"}})
    for href in (later["href"], profiled["href"]):
        assert (await wait_status(admin, href, "ignored"))["reason"] == "typology:quarantine"
    assert smtp.messages == []

    r = await admin.delete("/api/v1/quarantine/email/gone@example.org")
    assert r.status_code == 204
    assert_problem(await admin.delete("/api/v1/quarantine/email/gone@example.org"), 404)
    assert (await admin.get("/api/v1/quarantine")).json()["items"] == []
    released = await trigger(admin, plain, {"email": "gone@example.org", "ctx": {"firstName": "G"}})
    await wait_status(admin, released["href"], "processed")


async def test_repeated_soft_bounces_quarantine(server, smtp: FakeSMTPServer) -> None:
    """Three messages soft-bounced (one soft bounce a message, however often each is tried)."""
    admin = server.admin
    plain = await live_event(admin, smtp, "receipt")
    smtp.fail_always(452, "4.2.2 Mailbox full")
    body = {"email": "full@example.org", "ctx": {"firstName": "F"}}
    sent = [await trigger(admin, plain, body) for _ in range(3)]

    async def quarantined() -> bool:
        items = (await admin.get("/api/v1/quarantine")).json()["items"]
        return [i["address"] for i in items] == ["full@example.org"]

    for _ in range(300):
        if await quarantined():
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("three soft bounces did not quarantine the address")
    smtp.reset_failures()
    for accepted in sent:
        await wait_status(admin, accepted["href"], {"ignored", "processed"})
    later = await trigger(admin, plain, body)
    assert (await wait_status(admin, later["href"], "ignored"))["reason"] == "typology:quarantine"


async def _profile_sms_event(server, fake_twilio, event_id: str, draft: dict) -> str:
    """A published profile-based SMS event (by `ctx.customer`) with `draft` published."""
    admin = server.admin
    await create_sms_channel(admin, fake_twilio, server.base_url)
    created = await create_event(
        admin,
        event_id,
        fields=[],
        channel="sms",
        channel_config="sms",
        target="profile",
        reconciliation={"from": "ctx.customer", "to": "profile_id"},
    )
    event: str = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{event}/publish")).status_code == 200
    r = await admin.put(f"/api/v1/messages/{event}/draft", json=draft)
    assert r.status_code == 200, r.text
    assert (await admin.post(f"/api/v1/messages/{event}/publish")).status_code == 201
    return event


async def test_profile_based_sms_go_to_the_profiles_number(server, fake_twilio) -> None:
    admin = server.admin
    draft = {"body": "Hi {{ profile.first_name }}", "variants": {"fr": {"body": "Salut"}}}
    event = await _profile_sms_event(server, fake_twilio, "smsWelcome", draft)
    await put_profile(admin, "c-1", mobilePhone="+1 415 555 2671", first_name="Grace")
    await put_profile(admin, "c-2", mobilePhone="+33 6 12 34 56 78", language="fr")
    await put_profile(admin, "c-3", mobilePhone="+14155550111", sms_opt_out=True)
    await put_profile(admin, "c-4", email="only-mail@example.org")
    sent = [await trigger(admin, event, {"ctx": {"customer": c}}) for c in ("c-1", "c-2")]
    for accepted in sent:
        await wait_status(admin, accepted["href"], "processed")
    texts = sorted((m.to, m.body) for m in await fake_twilio.wait_for(2))
    assert texts == [("+14155552671", "Hi Grace"), ("+33612345678", "Salut")]
    opted_out = await trigger(admin, event, {"ctx": {"customer": "c-3"}})
    ignored = await wait_status(admin, opted_out["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"
    no_number = await trigger(admin, event, {"ctx": {"customer": "c-4"}})
    failed = await wait_status(admin, no_number["href"], "targetingFailed")
    assert failed["reason"] == "profile 'c-4' has no sms address"
    assert len(fake_twilio.messages) == 2


async def test_a_profile_based_sms_carries_its_unsubscribe_link(server, fake_twilio) -> None:
    """`{{ unsubscribe_url }}` in an SMS (checked, previewed and published as in an email)
    renders the profile's link; following it opts the profile out of SMS, not of email."""
    admin = server.admin
    draft = {"body": "Hi {{ profile.first_name }}, stop: {{ unsubscribe_url }}"}
    event = await _profile_sms_event(server, fake_twilio, "smsNews", draft)
    await put_profile(admin, "c-9", mobilePhone="+14155552675", first_name="Eve")
    accepted = await trigger(admin, event, {"ctx": {"customer": "c-9"}})
    await wait_status(admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    prefix = "Hi Eve, stop: http://localhost:8025/unsubscribe/"
    assert sms.body.startswith(prefix), sms.body
    path = sms.body[len("Hi Eve, stop: http://localhost:8025") :]
    r = await server.client().post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    profile = (await admin.get("/api/v1/profiles/c-9")).json()
    assert (profile["sms_opt_out"], profile["email_opt_out"]) == (True, False)
    again = await trigger(admin, event, {"ctx": {"customer": "c-9"}})
    ignored = await wait_status(admin, again["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"


async def test_a_stop_opts_the_profile_out_of_sms(server, fake_twilio) -> None:
    """Twilio's 21610 (the person texted STOP) on a profile-based SMS sets the profile's
    sms_opt_out, as the person's own act: a re-import without the column, or with `false`,
    does not send to them again. It is an unsubscribe, not a bounce: the number is held as a
    STOP (`sms_stop`, beside the profile's `unsubscribe`), the delivery log and the report
    count an unsubscribe. Sending again takes the hold released and the person's opt-in."""
    admin = server.admin
    event = await _profile_sms_event(server, fake_twilio, "smsStop", {"body": "Hi"})
    await put_profile(admin, "c-7", mobilePhone="+14155552677", email="c7@example.org")
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    first = await trigger(admin, event, {"ctx": {"customer": "c-7"}})
    await wait_status(admin, first["href"], "deliveryFailed")
    profile = (await admin.get("/api/v1/profiles/c-7")).json()
    assert (profile["sms_opt_out"], profile["email_opt_out"]) == (True, False)
    await put_profile(admin, "c-7", mobilePhone="+14155552677", sms_opt_out=False)
    assert (await admin.get("/api/v1/profiles/c-7")).json()["sms_opt_out"] is True
    later = await trigger(admin, event, {"ctx": {"customer": "c-7"}})
    ignored = await wait_status(admin, later["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"
    assert fake_twilio.requests == 1

    why = (await admin.get("/api/v1/suppressions/sms/+14155552677")).json()
    assert sorted((e["reason"], e["detail"][:18]) for e in why["reasons"]) == [
        ("sms_stop", "Twilio error 21610"),
        ("unsubscribe", "profile c-7"),
    ]
    [logged] = await delivery_log(admin, first["href"])
    assert (logged["kind"], logged["detail"]["method"]) == ("unsubscribed", "stop")
    report = (await admin.get(f"/api/v1/reports/{event}")).json()["total"]
    assert (report["bounced_hard"], report["unsubscribed"]) == (0, 1)

    # The hold is the number's: another profile with it is not sent to either.
    await put_profile(admin, "c-8", mobilePhone="+14155552677")
    other = await trigger(admin, event, {"ctx": {"customer": "c-8"}})
    ignored = await wait_status(admin, other["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"
    r = await admin.delete("/api/v1/quarantine/sms/+14155552677")
    assert r.status_code == 204, r.text
    still = await trigger(admin, event, {"ctx": {"customer": "c-7"}})
    ignored = await wait_status(admin, still["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"  # the profile's own opt-out stays
    r = await admin.put(
        "/api/v1/profiles/c-7?resubscribe=true",
        json={"mobilePhone": "+14155552677", "sms_opt_out": False},
    )
    assert r.status_code == 200, r.text
    again = await trigger(admin, event, {"ctx": {"customer": "c-7"}})
    await wait_status(admin, again["href"], "processed")
    assert fake_twilio.requests == 2


async def test_a_profile_is_found_by_email_whatever_its_case(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event = await profile_event(admin, smtp, reconciliation={"from": "email", "to": "email"})
    await put_profile(admin, "c3", email="three@example.org", first_name="Cy")
    await put_profile(admin, "c4", email="Four.Name@example.org", first_name="Di")
    for asked in ("THREE@example.org", "four.name@EXAMPLE.org"):
        accepted = await trigger(admin, event, {"email": asked, "ctx": {}})
        await wait_status(admin, accepted["href"], "processed")
    mails = await smtp.wait_for(2)
    # Sent to each profile's address as stored, greeting its owner.
    assert sorted((m.rcpt_tos[0], m.subject) for m in mails) == [
        ("Four.Name@example.org", "Hello Di"),
        ("three@example.org", "Hello Cy"),
    ]


async def test_profile_fields_without_a_value_render_empty(server, smtp: FakeSMTPServer) -> None:
    # Previews use a sample profile with every field: only a real profile showed "None".
    admin = server.admin
    event = await profile_event(
        admin,
        smtp,
        reconciliation={"from": "ctx.customer", "to": "profile_id"},
        subject="Welcome, {{ profile.first_name }}",
        html="<p>Hi {{ profile.first_name }}</p>",
        text="Hi {{ profile.first_name|default('there') }}{{ profile.last_name }}"
        "{{ profile.language|default('') }}.",
    )
    await put_profile(admin, "c-42", email="grace@example.org")
    accepted = await trigger(admin, event, {"ctx": {"customer": "c-42"}})
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "Welcome,"
    assert mail.html is not None and mail.html.strip() == "<p>Hi </p>"
    assert mail.text is not None and mail.text.strip() == "Hi there."


async def test_a_trigger_without_the_field_it_is_reconciled_by_is_refused(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    by_email = await profile_event(admin, smtp)  # default reconciliation: email -> email
    await put_profile(admin, "p1", email="ada@example.org", first_name="Ada")
    r = await admin.post(f"/rest/mc/{by_email}", json={"ctx": {"order": "A"}})
    assert_problem(r, 400, "email")
    r = await admin.post(
        f"/rest/mc/{by_email}/batch",
        json={"events": [{"email": "ada@example.org", "ctx": {}}, {"ctx": {"order": "B"}}]},
    )
    assert r.status_code == 207, r.text
    [ok, refused] = r.json()["items"]
    assert "PKey" in ok and refused["index"] == 1
    assert refused["problem"]["errors"][0]["field"] == "events[1].email"
    await wait_status(admin, ok["href"], "processed")

    # Reconciled by the trigger's mobilePhone: it is needed too.
    by_phone = await profile_event(
        admin,
        smtp,
        "byphone",
        reconciliation={"from": "mobilePhone", "to": "mobilePhone"},
        channel=False,
    )
    r = await admin.post(f"/rest/mc/{by_phone}", json={"email": "ada@example.org"})
    assert_problem(r, 400, "mobilePhone")

    # Reconciled by a ctx field: the field's own `required` decides (not declared here).
    by_ctx = await profile_event(
        admin,
        smtp,
        "byctx",
        reconciliation={"from": "ctx.order", "to": "profile_id"},
        channel=False,
    )
    r = await admin.post(f"/rest/mc/{by_ctx}", json={"ctx": {}})
    assert r.status_code == 201, r.text
