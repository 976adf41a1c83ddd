"""SMS end to end over real HTTP on both sides: engine API <-> fake Twilio <-> signed callbacks."""

from __future__ import annotations

from typing import Any

import httpx

from helpers import (
    assert_problem,
    create_event,
    create_key,
    create_sms_channel,
    delivery_log,
    live_sms_event,
    metrics_showing,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.testing import FakeTwilio
from webhook_support import Receiver

ADA = {"mobilePhone": "+1 (415) 555-2671", "ctx": {"firstName": "Ada", "orderId": "A-17"}}
ADA_E164 = "+14155552671"
CALLBACK_PATH = "/webhooks/twilio/status"


async def test_trigger_send_receipt_delivered(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url, "orderShipped")
    channel = (await admin.get("/api/v1/channel-configs/sms")).json()
    assert channel["twilio"]["auth_token_set"] is True
    assert fake_twilio.auth_token not in str(channel)
    website = server.client(await create_key(admin, "trigger"))

    accepted = await trigger(website, event_id, ADA)
    assert accepted["mobilePhone"] == ADA_E164 and accepted["email"] is None
    done = await wait_status(website, accepted["href"], "processed")
    assert done["mobilePhone"] == ADA_E164

    # Twilio received the rendered text, form-encoded, with Basic auth (else it answers 401).
    [sms] = await fake_twilio.wait_for(1)
    assert sms.to == ADA_E164
    assert sms.from_ == "+14155550100"
    assert sms.body == f"Hi Ada, order A-17 shipped. Ref {accepted['PKey']}"
    assert sms.status_callback == f"{server.base_url}{CALLBACK_PATH}?pkey={accepted['PKey']}"

    # Twilio's signed callbacks move the delivery log along.
    assert await fake_twilio.send_status(sms, "queued") == 204  # a step: not recorded
    assert await fake_twilio.send_status(sms, "sent") == 204
    assert await fake_twilio.send_status(sms, "delivered") == 204
    log = await delivery_log(admin, accepted["href"])
    assert [e["kind"] for e in log] == ["sent", "delivered"]
    assert all(e["detail"]["MessageSid"] == sms.sid for e in log)
    assert log[0]["at"] <= log[1]["at"]
    await website.aclose()


async def test_undelivered_receipt_keeps_the_error_code(server, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    assert await fake_twilio.send_status(sms, "undelivered", 30003) == 204
    assert await fake_twilio.send_status(sms, "failed", 30008) == 204
    log = await delivery_log(server.admin, accepted["href"])
    assert [(e["kind"], e["detail"]["ErrorCode"]) for e in log] == [
        ("undelivered", "30003"),
        ("failed", "30008"),
    ]


async def test_forged_callbacks_are_refused(server, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    url = sms.status_callback
    assert url is not None
    params = fake_twilio.callback_params(sms, "delivered")
    async with httpx.AsyncClient(timeout=10) as client:
        unsigned = await client.post(url, data=params)
        assert_problem(unsigned, 403)
        forged = await client.post(url, data=params, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
        assert_problem(forged, 403)
        # Signed with another account's token.
        other = FakeTwilio(account_sid=fake_twilio.account_sid, auth_token="another-token")
        signed_elsewhere = other.sign(url, params)
        r = await client.post(url, data=params, headers={"X-Twilio-Signature": signed_elsewhere})
        assert_problem(r, 403)
        # A genuine signature, but the parameters were changed on the way.
        genuine = fake_twilio.sign(url, params)
        tampered = {**params, "MessageStatus": "failed"}
        r = await client.post(url, data=tampered, headers={"X-Twilio-Signature": genuine})
        assert_problem(r, 403)
        # ... or the URL (another event's PKey).
        r = await client.post(
            url.replace(accepted["PKey"], "0" * 26),
            data=params,
            headers={"X-Twilio-Signature": genuine},
        )
        assert_problem(r, 403)
        # The untampered request is accepted: the checks above failed for their reason only.
        r = await client.post(url, data=params, headers={"X-Twilio-Signature": genuine})
        assert r.status_code == 204, r.text
    assert [e["kind"] for e in await delivery_log(server.admin, accepted["href"])] == ["delivered"]


async def test_invalid_or_missing_number_is_a_400(server, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    admin = server.admin
    ctx = {"firstName": "Ada", "orderId": "A-18"}
    for bad in ("+1 555 867 5310", "0612345678", "not a number", 14155552671, "+" + "1" * 70):
        r = await admin.post(f"/rest/mc/{event_id}", json={"mobilePhone": bad, "ctx": ctx})
        assert_problem(r, 400, "mobilePhone")
    r = await admin.post(f"/rest/mc/{event_id}", json={"email": "ada@example.org", "ctx": ctx})
    body = assert_problem(r, 400, "mobilePhone")
    assert "required" in body["detail"]
    # A valid number in national formatting with its country code is normalised.
    ok = await trigger(admin, event_id, {"mobilePhone": "+33 6 12 34 56 78", "ctx": ctx})
    assert ok["mobilePhone"] == "+33612345678"
    await wait_status(admin, ok["href"], "processed")
    assert [m.to for m in await fake_twilio.wait_for(1)] == ["+33612345678"]


async def test_transient_errors_are_retried_until_sent(server, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_next(429)
    fake_twilio.fail_next(500)
    fake_twilio.fail_next(503)
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed")
    assert fake_twilio.requests == 4
    assert len(await fake_twilio.wait_for(1)) == 1


async def test_transient_errors_until_expiration_end_too_old(
    server, fake_twilio: FakeTwilio
) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_always(503)
    body = {**ADA, "expiration": _in_seconds(1.5)}
    accepted = await trigger(server.admin, event_id, body)
    done = await wait_status(server.admin, accepted["href"], "tooOld")
    # Expired while waiting for a retry, or found expired when claimed: with the last error.
    assert done["reason"] == (
        "expired while retrying: Twilio error 20503 (HTTP 503): Service Unavailable"
    )
    assert fake_twilio.requests >= 2 and fake_twilio.messages == []


async def test_twilio_error_code_ends_delivery_failed(server, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    accepted = await trigger(server.admin, event_id, ADA)
    done = await wait_status(server.admin, accepted["href"], "deliveryFailed")
    assert done["reason"] == (
        "Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient"
    )
    assert fake_twilio.requests == 1  # permanent: not retried
    # The fake's own check of the number (21211) ends the same way.
    other = {**ADA, "mobilePhone": "+14155552672"}
    fake_twilio.fail_next(400, 21211, "The 'To' number +14155552672 is not a valid phone number.")
    accepted = await trigger(server.admin, event_id, other)
    done = await wait_status(server.admin, accepted["href"], "deliveryFailed")
    assert done["reason"].startswith("Twilio error 21211 (HTTP 400): The 'To' number")
    # An invalid number is not an opt-out: the next message to it is sent.
    accepted = await trigger(server.admin, event_id, other)
    await wait_status(server.admin, accepted["href"], "processed")


async def test_stop_21610_holds_the_number(
    server, fake_twilio: FakeTwilio, receiver: Receiver
) -> None:
    """Twilio's 21610 (the number texted STOP) is the person's opt-out, not a bounce: the
    number is held, so later messages to it are ignored as opted out, not attempted and refused
    again; the suppression list says `sms_stop`; the delivery log, the webhook, the report and
    the metrics count an unsubscribe, no hard bounce. An admin's release sends again."""
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url)
    r = await admin.patch(
        f"/api/v1/event-configs/{event_id}",
        json={"webhook": {"url": receiver.url, "secret": "at-least-16-characters"}},
    )
    assert r.status_code == 200, r.text
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    first = await trigger(admin, event_id, ADA)
    failed = await wait_status(admin, first["href"], "deliveryFailed")
    assert failed["reason"].startswith("Twilio error 21610")
    later = await trigger(admin, event_id, ADA)
    ignored = await wait_status(admin, later["href"], "ignored")
    assert ignored["reason"] == "typology:opt_out:sms"
    assert fake_twilio.requests == 1 and fake_twilio.messages == []

    r = await admin.get(f"/api/v1/suppressions/sms/{ADA_E164}")
    assert r.status_code == 200, r.text
    [entry] = r.json()["reasons"]
    assert entry["reason"] == "sms_stop"
    assert entry["detail"].startswith("Twilio error 21610")
    listed = (await admin.get("/api/v1/suppressions", params={"reason": "sms_stop"})).json()
    assert [(e["address"], e["reason"]) for e in listed["items"]] == [(ADA_E164, "sms_stop")]
    bounced = (await admin.get("/api/v1/suppressions", params={"reason": "hard_bounce"})).json()
    assert bounced["items"] == []
    [held] = (await admin.get("/api/v1/quarantine")).json()["items"]
    assert (held["address"], held["opted_out"]) == (ADA_E164, True)

    [logged] = await delivery_log(admin, first["href"])
    assert logged["kind"] == "unsubscribed"
    assert logged["detail"]["channel"] == "sms" and logged["detail"]["method"] == "stop"
    assert logged["detail"]["reason"].startswith("Twilio error 21610")
    report = (await admin.get(f"/api/v1/reports/{event_id}")).json()["total"]
    counted = {k: report[k] for k in ("bounced_hard", "bounced_soft", "unsubscribed", "failed")}
    assert counted == {"bounced_hard": 0, "bounced_soft": 0, "unsubscribed": 1, "failed": 1}
    assert report["ignored"] == 1
    text = await metrics_showing(
        admin, 'txmsg_provider_errors_total{channel="sms",kind="opt_out"} 1.0'
    )
    assert 'txmsg_provider_errors_total{channel="sms",kind="bounce"}' not in text
    await wait_until(
        lambda: any(d["interaction"] == "unsubscribed" for d in receiver.delivered()),
        what="the unsubscribe announced",
    )
    interactions = [d["interaction"] for d in receiver.delivered() if d["interaction"]]
    assert interactions == ["unsubscribed"]

    # Released (the number texted START): sent again.
    r = await admin.delete(f"/api/v1/quarantine/sms/{ADA_E164}")
    assert r.status_code == 204, r.text
    assert (await admin.get(f"/api/v1/suppressions/sms/{ADA_E164}")).json()["reasons"] == []
    again = await trigger(admin, event_id, ADA)
    await wait_status(admin, again["href"], "processed")
    assert [m.to for m in await fake_twilio.wait_for(1)] == [ADA_E164]


async def test_transient_4xx_answers_are_retried(server, fake_twilio: FakeTwilio) -> None:
    """A proxy's 4xx (no Twilio error code, or the status as code), and 408/409/425/429, say
    nothing about the recipient: retried, not deliveryFailed."""
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_next(404)  # no Twilio code: a proxy or gateway answered
    fake_twilio.fail_next(407, 407, "Proxy Authentication Required")
    fake_twilio.fail_next(413, 413, "Request Entity Too Large")
    fake_twilio.fail_next(408)
    fake_twilio.fail_next(409, 20409, "Conflict")
    fake_twilio.fail_next(425)
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed")
    assert fake_twilio.requests == 7
    assert len(await fake_twilio.wait_for(1)) == 1


async def test_wrong_auth_token_is_retried_until_too_old(server, fake_twilio: FakeTwilio) -> None:
    """A rejected token is the configuration's fault (rotated), not the recipient's: retried
    until expiration, so fixing the token in time sends the message."""
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    r = await server.admin.patch(
        "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": "wrong"}}
    )
    assert r.status_code == 200, r.text
    accepted = await trigger(server.admin, event_id, {**ADA, "expiration": _in_seconds(1.5)})
    reason = "Twilio error 20003 (HTTP 401): Authenticate"
    retrying = await wait_status(server.admin, accepted["href"], {"pending", "tooOld"})
    while retrying["status"] == "pending" and retrying["reason"] is None:
        retrying = await wait_status(server.admin, accepted["href"], {"pending", "tooOld"})
    # Expired while waiting for a retry (with the last error), or found expired when claimed.
    expired = "expired before it could be sent"
    assert retrying["reason"] in (
        f"retrying: {reason}",
        f"expired while retrying: {reason}",
        expired,
    )
    done = await wait_status(server.admin, accepted["href"], "tooOld")
    assert done["reason"] in (f"expired while retrying: {reason}", expired)
    assert "wrong" not in done["reason"]
    assert fake_twilio.requests >= 2 and fake_twilio.messages == []
    # Fixed in time: the waiting message goes out.
    held = await trigger(server.admin, event_id, ADA)
    await wait_until_requests(fake_twilio, fake_twilio.requests + 1)
    r = await server.admin.patch(
        "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": fake_twilio.auth_token}}
    )
    assert r.status_code == 200, r.text
    await wait_status(server.admin, held["href"], "processed")
    assert len(await fake_twilio.wait_for(1)) == 1


async def wait_until_requests(twilio: FakeTwilio, count: int) -> None:
    from helpers import wait_until

    await wait_until(lambda: twilio.requests >= count, what=f"{count} requests to Twilio")


async def test_pause_resume_idempotency_and_reuse(server, fake_twilio: FakeTwilio) -> None:
    """What works for email works for SMS: pause holds, resume sends, keys replay; one client."""
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    held = await trigger(admin, event_id, ADA, headers={"Idempotency-Key": "k1"})
    assert held["status"] == "paused"
    again = await admin.post(f"/rest/mc/{event_id}", json=ADA, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == held
    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "processed")
    for _ in range(3):  # one after the other: one kept-alive connection serves them all
        accepted = await trigger(admin, event_id, ADA)
        await wait_status(admin, accepted["href"], "processed")
    assert len(await fake_twilio.wait_for(4)) == 4
    assert fake_twilio.connections_opened == 1


async def test_messaging_service_sender(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url)
    service = "MG" + "ab" * 16
    r = await admin.patch(
        "/api/v1/channel-configs/sms",
        json={"twilio": {"messaging_service_sid": service, "from_number": None}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["twilio"]["from_number"] is None
    accepted = await trigger(admin, event_id, ADA)
    await wait_status(admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    assert sms.messaging_service_sid == service and sms.from_ is None


async def test_sms_message_preview_and_default_template(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    await create_sms_channel(admin, fake_twilio, server.base_url)
    created = await create_event(
        admin,
        "codeSent",
        fields=[{"name": "code", "type": "string"}],
        channel="sms",
        channel_config="sms",
    )
    assert created["template"] == "sms_default"
    event_id = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.json()["api_preview"]["body"] == {
        "mobilePhone": "+14155552671",
        "ctx": {"code": "sample code"},
    }
    message = (await admin.get(f"/api/v1/messages/{event_id}")).json()
    assert set(message["draft"]) == {"body"}
    r = await admin.post(f"/api/v1/messages/{event_id}/preview", json={"ctx": {"code": "42"}})
    assert r.json() == {
        "text": "EVTcodeSent: code=42",
        "encoding": "GSM-7",
        "segments": 1,
        "characters": 20,
        "units": 20,
        "render_warnings": [],
    }
    r = await admin.put(
        f"/api/v1/messages/{event_id}/draft", json={"body": "Code {{ ctx.code }} ✓ " + "x" * 70}
    )
    assert r.status_code == 200, r.text
    r = await admin.post(f"/api/v1/messages/{event_id}/preview", json={"ctx": {"code": "42"}})
    assert r.json()["encoding"] == "UCS-2" and r.json()["segments"] == 2
    # The email parts are not parts of an SMS message, and the body is required.
    r = await admin.put(f"/api/v1/messages/{event_id}/draft", json={"subject": "x", "body": "y"})
    assert_problem(r, 422, "subject")
    assert_problem(await admin.put(f"/api/v1/messages/{event_id}/draft", json={}), 422, "body")
    r = await admin.put(f"/api/v1/messages/{event_id}/draft", json={"body": "{{ ctx.code "})
    assert_problem(r, 422, "body")
    # An email template does not fit an SMS event, nor an email channel.
    r = await admin.post(
        "/api/v1/event-configs",
        json={"eventId": "x", "channel": "sms", "channel_config": "sms", "template": "default"},
    )
    assert_problem(r, 400, "template")


async def test_the_preview_says_what_a_send_does_with_an_empty_or_too_long_text(
    server, fake_twilio: FakeTwilio
) -> None:
    """The preview's length, segments and warnings are what a send meets: an empty text is not
    sent (routingFailed); past Twilio's 1,600 characters Twilio refuses it (21617), so the
    event ends deliveryFailed; the dry run names the recent events that would."""
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url, body="{{ ctx.orderId }}")
    preview = f"/api/v1/messages/{event_id}/preview"

    async def previewed(order_id: str) -> dict[str, Any]:
        r = await admin.post(preview, json={"ctx": {"firstName": "Ada", "orderId": order_id}})
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    at_limit = await previewed("€" + "x" * 1599)  # the euro: 2 septets, 1 character
    assert (at_limit["characters"], at_limit["units"]) == (1600, 1601)
    assert (at_limit["encoding"], at_limit["segments"]) == ("GSM-7", 11)
    assert at_limit["render_warnings"] == []
    emoji = await previewed("😀" * 801)
    assert (emoji["characters"], emoji["units"]) == (1602, 1602)
    # 33 emoji a segment: a pair is never split, so 66 of the 67 units are used.
    assert (emoji["encoding"], emoji["segments"]) == ("UCS-2", 25)
    [too_long] = emoji["render_warnings"]
    assert (too_long["code"], too_long["part"]) == ("too_long", "body")
    assert too_long["status"] == "deliveryFailed"
    assert "1,602 characters" in too_long["detail"] and "21617" in too_long["detail"]
    empty = await previewed("  \n")
    assert (empty["text"], empty["characters"], empty["segments"]) == ("", 0, 0)
    [nothing] = empty["render_warnings"]
    assert (nothing["code"], nothing["status"]) == ("empty_text", "routingFailed")

    # A send does what the preview said.
    long_one = await trigger(
        admin, event_id, {**ADA, "ctx": {"firstName": "A", "orderId": "😀" * 801}}
    )
    empty_one = await trigger(admin, event_id, {**ADA, "ctx": {"firstName": "A", "orderId": " "}})
    fits = await trigger(admin, event_id, {**ADA, "ctx": {"firstName": "A", "orderId": "x" * 1600}})
    done = await wait_status(admin, long_one["href"], {"deliveryFailed", "processed"})
    assert done["status"] == "deliveryFailed" and "21617" in done["reason"], done
    done = await wait_status(admin, empty_one["href"], {"routingFailed", "processed"})
    assert done["status"] == "routingFailed", done
    await wait_status(admin, fits["href"], "processed")
    [sent] = fake_twilio.messages
    assert sent.body == "x" * 1600

    r = await admin.post(f"/api/v1/messages/{event_id}/publish?dry_run=true")
    assert r.status_code == 200, r.text
    warned = {w["PKey"]: (w["code"], w["status"]) for w in r.json()["render_warnings"]}
    assert warned == {
        long_one["PKey"]: ("too_long", "deliveryFailed"),
        empty_one["PKey"]: ("empty_text", "routingFailed"),
    }


def _in_seconds(seconds: float) -> str:
    from datetime import timedelta

    from txmsg.core.timeutil import isoformat, utcnow

    return isoformat(utcnow() + timedelta(seconds=seconds)) or ""


async def test_unrenderable_and_unpublished_sms_events(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    # The template calls a method of ctx.orderId, which this trigger lacks (it is optional in
    # the fields: left out, it renders empty, but has no methods).
    event_id = await live_sms_event(
        admin, fake_twilio, server.base_url, body="Order {{ ctx.orderId.upper() }} shipped"
    )
    lacking = await trigger(admin, event_id, {"mobilePhone": ADA_E164, "ctx": {"firstName": "A"}})
    done = await wait_status(admin, lacking["href"], "routingFailed")
    assert "orderId" in done["reason"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    held = await trigger(admin, event_id, ADA)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/unpublish")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "ignored")
    assert fake_twilio.messages == [] and fake_twilio.requests == 0


async def test_email_events_accept_a_mobile_phone_too(server, smtp) -> None:
    """Adobe's payload carries both: an email event stores a valid mobilePhone, sends email."""
    from helpers import live_event, publish_message

    event_id = await live_event(server.admin, smtp)
    await publish_message(server.admin, event_id, text="Call {{ event.mobilePhone }}")
    body = {"email": "ada@example.org", "mobilePhone": "+44 7911 123456", "ctx": {"firstName": "A"}}
    accepted = await trigger(server.admin, event_id, body)
    assert accepted["mobilePhone"] == "+447911123456"
    await wait_status(server.admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]
    assert mail.text == "Call +447911123456"  # templates see the stored number
    r = await server.admin.post(f"/rest/mc/{event_id}", json={**body, "mobilePhone": "+4479"})
    assert_problem(r, 400, "mobilePhone")
    r = await server.admin.post(f"/rest/mc/{event_id}", json={"mobilePhone": "+447911123456"})
    assert_problem(r, 400, "email")


async def test_an_sms_drafts_body_errors_point_at_its_body(server, fake_twilio: FakeTwilio) -> None:
    """`body` is the SMS text's field: its errors point at `/body`, not at the whole request
    body (the pointer "" that a request body not an object gets)."""
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    draft = f"/api/v1/messages/{event_id}/draft"
    for body, status in (({"body": 5}, 400), ({"body": ""}, 422), ({"body": "{{ x"}, 422)):
        problem = assert_problem(await server.admin.put(draft, json=body), status, "body")
        assert problem["errors"][0]["pointer"] == "/body", problem
    problem = assert_problem(await server.admin.put(draft, json=["body"]), 400, "body")
    assert problem["errors"][0]["pointer"] == "", problem
    r = await server.admin.put(draft, json={"body": "Hi {{ ctx.nope }}"})
    assert r.status_code == 200, r.text
    problem = assert_problem(await server.admin.post(f"/api/v1/messages/{event_id}/publish"), 422)
    assert problem["errors"][0]["pointer"] == "/body", problem


async def test_an_sms_rendering_a_lone_surrogate_is_unroutable(
    server, fake_twilio: FakeTwilio
) -> None:
    # No UTF-8 form: Twilio's request could not be made, and the event was retried for a day.
    admin = server.admin
    body = "Hi{% if ctx.firstName == 'Eve' %} {{ '%c'|format(55296) }}{% endif %}"
    event_id = await live_sms_event(admin, fake_twilio, server.base_url, body=body)
    eve = {"mobilePhone": ADA_E164, "ctx": {"firstName": "Eve"}}
    r = await admin.post(f"/api/v1/messages/{event_id}/preview", json={"ctx": eve["ctx"]})
    error = assert_problem(r, 422, "body")["errors"][0]
    assert error["detail"].startswith("renders U+D800, a lone surrogate"), error
    accepted = await trigger(admin, event_id, eve)
    done = await wait_status(admin, accepted["href"], {"routingFailed", "processed"})
    assert done["status"] == "routingFailed", done
    assert "body: renders U+D800, a lone surrogate" in done["reason"], done
    assert fake_twilio.requests == 0
