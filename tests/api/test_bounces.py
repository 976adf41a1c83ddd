"""Bounces after acceptance, end to end: VERP envelope senders, DSNs and ARF complaints sent
over SMTP to the bounce listener of the running server, and the HTTP feedback endpoint."""

from __future__ import annotations

import asyncio
import logging
import re
from email import message_from_string
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import aiosmtplib
import httpx
import pytest
import sqlalchemy as sa

from helpers import assert_problem, create_key, delivery_log, live_event, trigger, wait_status
from txmsg.testing import FakeSMTPServer
from txmsg.testing.smtp import ReceivedMessage

BOUNCE_DOMAIN = "bounces.example.test"
ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
LISTENING = pytest.mark.server_settings(bounce_listen="127.0.0.1:0")


async def bounce_event(server: Any, smtp: FakeSMTPServer) -> str:
    """A published event whose channel configuration has a bounce domain."""
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.patch(
        "/api/v1/channel-configs/mail", json={"bounce_domain": "Bounces.Example.TEST."}
    )
    assert r.status_code == 200, r.text
    assert r.json()["bounce_domain"] == BOUNCE_DOMAIN
    return event_id


async def send_one(
    server: Any, smtp: FakeSMTPServer, event_id: str, body: dict[str, Any] = ADA
) -> tuple[dict[str, Any], ReceivedMessage]:
    accepted = await trigger(server.admin, event_id, body)
    await wait_status(server.admin, accepted["href"], "processed")
    # Recorded `processed` once the server accepted it: it is among the received messages.
    [mail] = [m for m in smtp.messages if accepted["PKey"] in m.message["Message-ID"]]
    return accepted, mail


async def log_of(admin: httpx.AsyncClient, accepted: dict[str, Any]) -> list[dict[str, Any]]:
    items = await delivery_log(admin, accepted["href"])
    return [e for e in items if e["kind"] in ("bounced", "spam")]


async def log_showing(
    admin: httpx.AsyncClient, accepted: dict[str, Any], count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """`log_of` once it has `count` entries: a status may be final a moment before the entry
    written beside it (on a busy machine, the entry was read missing)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        entries = await log_of(admin, accepted)
        if len(entries) >= count or asyncio.get_running_loop().time() > deadline:
            return entries
        await asyncio.sleep(0.05)


def dsn(
    recipient: str, action: str, status: str, diagnostic: str, original: ReceivedMessage
) -> Message:
    """A delivery status notification (RFC 3464) as a receiving MTA writes it."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(
        MIMEText("I'm sorry to have to inform you that your message could not be delivered.")
    )
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mx.example.org"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; {diagnostic}"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    headers = MIMEText(
        "".join(f"{k}: {v}\n" for k, v in original.message.items()), "rfc822-headers"
    )
    report.attach(headers)
    return report


def arf(original: Message, feedback_type: str = "abuse") -> Message:
    """A spam complaint in the Abuse Reporting Format (RFC 5965)."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@mailbox.example.net"
    report["Subject"] = "Complaint about a message"
    report.attach(MIMEText("This is an email abuse report."))
    feedback = Message()
    feedback["Feedback-Type"] = feedback_type
    feedback["User-Agent"] = "ExampleFBL/1.0"
    feedback["Version"] = "1"
    part = MIMEBase("message", "feedback-report")
    part.set_payload([feedback])
    report.attach(part)
    report.attach(MIMEMessage(original))
    return report


async def deliver(server: Any, to: str, message: Message) -> None:
    """Send `message` to the bounce listener as a bounce is sent: null envelope sender."""
    listener = server.app.state.bounce_listener
    await aiosmtplib.send(
        message, hostname="127.0.0.1", port=listener.port, sender="", recipients=[to], timeout=10
    )


def returned(mail: ReceivedMessage) -> Message:
    """The sent message as the receiving MTA kept it: with its Return-Path."""
    kept = Message()
    kept["Return-Path"] = f"<{mail.mail_from}>"
    for name, value in mail.message.items():
        kept[name] = value
    kept.set_payload("(body)")
    return kept


async def quarantined(admin: httpx.AsyncClient) -> list[str]:
    r = await admin.get("/api/v1/quarantine")
    assert r.status_code == 200, r.text
    return [i["address"] for i in r.json()["items"]]


@LISTENING
async def test_a_hard_dsn_to_the_verp_address_quarantines(
    server, smtp: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mail.log")  # whatever the level, filtered
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    # The envelope sender names the message, signed, on the bounce domain; From is unchanged.
    assert re.fullmatch(
        rf"b-{accepted['PKey'].lower()}-[a-z2-7]{{16}}@{re.escape(BOUNCE_DOMAIN)}", mail.mail_from
    ), mail.mail_from
    assert len(mail.mail_from.partition("@")[0]) <= 64
    assert "shop@example.com" in mail.message["From"]
    assert await log_of(server.admin, accepted) == []

    report = dsn(
        "ada@example.org",
        "failed",
        "5.1.1",
        "550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown",
        mail,
    )
    # Some MTAs upper-case the local part: the address still reads.
    await deliver(server, mail.mail_from.upper(), report)
    [entry] = await log_of(server.admin, accepted)
    assert entry["kind"] == "bounced"
    assert entry["detail"]["bounce"] == "hard"
    assert entry["detail"]["source"] == "dsn"
    assert "5.1.1" in entry["detail"]["reason"] and "User unknown" in entry["detail"]["reason"]
    assert "ada@example.org" in await quarantined(server.admin)

    # The same DSN again (an MTA retrying) is recorded once.
    await deliver(server, mail.mail_from, report)
    assert len(await log_of(server.admin, accepted)) == 1

    # The next message to the address is not sent.
    again = await trigger(server.admin, event_id, ADA)
    status = await wait_status(server.admin, again["href"], "ignored")
    assert status["reason"] == "typology:quarantine"
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["bounced_hard"] == 1, r.text
    # Neither the listener nor aiosmtpd's session log logged the address or the content.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bounce listener: bounce (hard)" in logged
    assert "ada@example.org" not in logged and "User unknown" not in logged
    assert mail.mail_from not in logged and mail.mail_from.upper() not in logged


@LISTENING
async def test_a_database_failure_answers_451_and_the_retry_is_recorded(
    server, smtp: FakeSMTPServer, store: Any
) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    report = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 unknown", mail)

    def rename(conn: Any, old: str, new: str) -> None:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    await store.write(rename, "quarantine", "quarantine_away")
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await deliver(server, mail.mail_from, report)
        assert refused.value.code == 451
    finally:
        await store.write(rename, "quarantine_away", "quarantine")
    assert await log_of(server.admin, accepted) == []  # all or nothing
    await deliver(server, mail.mail_from, report)  # the sending MTA tries again
    assert [e["detail"]["bounce"] for e in await log_of(server.admin, accepted)] == ["hard"]
    assert "ada@example.org" in await quarantined(server.admin)


@LISTENING
async def test_control_characters_in_a_report_are_dropped(server, smtp: FakeSMTPServer) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    report = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 nulXhere", mail).as_bytes()
    # A NUL (PostgreSQL refuses it in text) and other control characters in Diagnostic-Code.
    raw = report.replace(b"nulXhere", b"no\x00such\x07user\x1b\x7fhere")
    port = server.app.state.bounce_listener.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as client:
        await client.mail("")
        await client.rcpt(mail.mail_from)
        answer = await client.data(raw)
    assert answer.code == 250, answer
    [entry] = await log_of(server.admin, accepted)
    assert entry["detail"]["reason"] == "550 5.1.1 no such user here"
    assert "ada@example.org" in await quarantined(server.admin)


@LISTENING
async def test_a_report_the_parser_cannot_read_is_refused(
    server, smtp: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    # A thousand nested messages: the `email` parser recurses too deep.
    deep = (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n\r\n--B\r\n"
        + "Content-Type: message/rfc822\r\n\r\n" * 1000
        + "Subject: secret content\r\n\r\nbody\r\n--B--\r\n"
    ).encode()
    caplog.set_level(logging.DEBUG)
    port = server.app.state.bounce_listener.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as client:
        await client.mail("")
        await client.rcpt(mail.mail_from)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(deep)
        assert (refused.value.code, refused.value.message[:5]) == (554, "5.6.0")
        # The session goes on: a readable report is still taken.
        answer = await client.sendmail(
            "",
            [mail.mail_from],
            dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 x", mail).as_bytes(),
        )
        assert answer[1] == "2.0.0 OK", answer
    assert [e["detail"]["bounce"] for e in await log_of(server.admin, accepted)] == ["hard"]
    # Logged: the exception's class, never the content nor the address.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RecursionError" in logged
    assert "secret content" not in logged and "ada@example.org" not in logged


@LISTENING
async def test_soft_and_delayed_dsns(server, smtp: FakeSMTPServer) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    # `delayed`: the MTA is still trying; nothing to record yet.
    await deliver(
        server, mail.mail_from, dsn("ada@example.org", "delayed", "4.4.1", "421 try later", mail)
    )
    assert await log_of(server.admin, accepted) == []
    # Given up on a full mailbox: a soft bounce, the address stays usable.
    await deliver(
        server,
        mail.mail_from,
        dsn("ada@example.org", "failed", "5.2.2", "552 5.2.2 Mailbox full", mail),
    )
    [entry] = await log_of(server.admin, accepted)
    assert entry["detail"]["bounce"] == "soft" and "Mailbox full" in entry["detail"]["reason"]
    assert "ada@example.org" not in await quarantined(server.admin)
    again = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, again["href"], "processed")
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["bounced_soft"] == 1, r.text


@LISTENING
@pytest.mark.parametrize(
    ("reply", "bounce"),
    [
        ("550 5.1.1 <{to}>: Recipient address rejected: User unknown", "hard"),
        ("552 5.2.2 <{to}>: Mailbox full", "soft"),
        ("550 5.7.26 Unauthenticated email is not accepted (DMARC policy)", None),
        ("550 5.7.1 <{to}>: Recipient address rejected: listed at a blocklist", None),
        ("553 5.1.8 <shop@example.com>: Sender address rejected: Domain not found", None),
    ],
)
async def test_one_classification_at_send_time_and_in_dsns(
    server, smtp: FakeSMTPServer, reply: str, bounce: str | None
) -> None:
    event_id = await bounce_event(server, smtp)
    expected = [bounce] if bounce else []
    # Refused by the server the message is sent to.
    code, _, text = reply.format(to="ada@example.org").partition(" ")
    smtp.fail_next(int(code), text)
    refused = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, refused["href"], "deliveryFailed")
    entries = await log_showing(server.admin, refused, len(expected))
    assert [e["detail"]["bounce"] for e in entries] == expected
    # Accepted, then refused further on: the DSN reads the same.
    accepted, mail = await send_one(server, smtp, event_id, {**ADA, "email": "bo@example.org"})
    text = reply.format(to="bo@example.org")
    await deliver(server, mail.mail_from, dsn("bo@example.org", "failed", text[4:9], text, mail))
    entries = await log_showing(server.admin, accepted, len(expected))
    assert [e["detail"]["bounce"] for e in entries] == expected
    held = ["ada@example.org", "bo@example.org"] if bounce == "hard" else []
    assert sorted(await quarantined(server.admin)) == held


@LISTENING
async def test_an_arf_complaint_records_spam(server, smtp: FakeSMTPServer) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    await deliver(server, mail.mail_from, arf(returned(mail)))
    [entry] = await log_of(server.admin, accepted)
    assert entry["kind"] == "spam" and entry["detail"]["source"] == "arf"
    r = await server.admin.get("/api/v1/denylist")
    assert ("email", "ada@example.org") in [(i["channel"], i["address"]) for i in r.json()["items"]]
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["spam"] == 1, r.text
    # A feedback loop's fixed address: the attached original's Return-Path names the message
    # (recorded once: it is the same complaint).
    other, other_mail = await send_one(server, smtp, event_id, {**ADA, "email": "bo@example.org"})
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", arf(returned(other_mail)))
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", arf(returned(other_mail)))
    assert [e["kind"] for e in await log_of(server.admin, other)] == ["spam"]
    # A report that is not a complaint is accepted and not recorded.
    third, third_mail = await send_one(server, smtp, event_id, {**ADA, "email": "cy@example.org"})
    await deliver(server, third_mail.mail_from, arf(returned(third_mail), "not-spam"))
    assert await log_of(server.admin, third) == []


@LISTENING
async def test_the_feedback_loop_address_reads_signed_complaints_only(
    server, smtp: FakeSMTPServer
) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    # Anyone who saw the message's Message-ID (it holds the PKey, unsigned) sends fbl@ a DSN
    # or a complaint naming it: nothing is recorded.
    pkey = accepted["PKey"].lower()
    forged_dsn = (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; evil\r\n\r\n"
        "Final-Recipient: rfc822; ada@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{pkey}@evil.test>\r\n\r\n--B--\r\n"
    )
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", message_from_string(forged_dsn))
    # Even with the genuine VERP Return-Path attached, a DSN is not read at fbl@.
    genuine = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 unknown", mail)
    genuine.attach(MIMEMessage(returned(mail)))
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", genuine)
    unsigned = Message()
    unsigned["Return-Path"] = "<shop@example.com>"
    unsigned["Message-ID"] = mail.message["Message-ID"]
    unsigned.set_payload("(body)")
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", arf(unsigned))
    assert await log_of(server.admin, accepted) == []
    assert await quarantined(server.admin) == []
    r = await server.admin.get("/api/v1/denylist")
    assert r.json()["items"] == [], r.text
    # A genuine complaint, with the VERP Return-Path in the attached original, is recorded.
    await deliver(server, f"fbl@{BOUNCE_DOMAIN}", arf(returned(mail)))
    assert [e["kind"] for e in await log_of(server.admin, accepted)] == ["spam"]


@LISTENING
async def test_the_listener_refuses_addresses_it_did_not_make(server, smtp: FakeSMTPServer) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    local, _, domain = mail.mail_from.partition("@")
    report = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 unknown", mail)
    forged_signature = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    # The same signature over another message's PKey.
    other_pkey = "0" * 26
    other_message = f"b-{other_pkey}-{local.rsplit('-', 1)[1]}@{domain}"
    for address in (
        forged_signature,
        other_message,
        f"{local}@other.example.test",
        f"postmaster@{domain}",
    ):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await deliver(server, address, report)
        assert refused.value.recipients[0].code == 550, address
    assert await log_of(server.admin, accepted) == []
    # Mail that is no report (an auto-reply) is accepted and dropped.
    reply = MIMEText("I am out of the office until Monday.")
    reply["Subject"] = "Auto: Hello Ada"
    await deliver(server, mail.mail_from, reply)
    assert await log_of(server.admin, accepted) == []


async def test_without_a_bounce_domain_the_from_address_is_the_envelope_sender(
    server, smtp: FakeSMTPServer
) -> None:
    event_id = await bounce_event(server, smtp)
    _, mail = await send_one(server, smtp, event_id)
    assert mail.mail_from.endswith("@" + BOUNCE_DOMAIN)
    r = await server.admin.patch("/api/v1/channel-configs/mail", json={"bounce_domain": None})
    assert r.status_code == 200 and r.json()["bounce_domain"] is None, r.text
    smtp.clear()
    _, mail = await send_one(server, smtp, event_id)
    assert mail.mail_from == "shop@example.com"
    for bad in ("not a host", "-x.example.com", "localhost", 42, "a" * 64 + ".example.com"):
        r = await server.admin.patch("/api/v1/channel-configs/mail", json={"bounce_domain": bad})
        assert_problem(r, 400, "bounce_domain")


async def test_feedback_endpoint(server, smtp: FakeSMTPServer) -> None:
    event_id = await live_event(server.admin, smtp)
    ada, _ = await send_one(server, smtp, event_id)
    bo, _ = await send_one(server, smtp, event_id, {**ADA, "email": "bo@example.org"})

    r = await server.admin.post(
        "/api/v1/feedback",
        json={"PKey": ada["PKey"], "type": "bounce", "bounce": "hard", "reason": "550 5.1.1"},
    )
    assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text
    [entry] = await log_of(server.admin, ada)
    assert entry["detail"] == {"bounce": "hard", "reason": "550 5.1.1", "source": "api"}
    assert "ada@example.org" in await quarantined(server.admin)

    batch = {
        "items": [
            {"PKey": bo["PKey"], "type": "spam"},
            {"PKey": bo["PKey"], "type": "bounce", "bounce": "soft"},
            {"PKey": bo["PKey"], "type": "spam"},  # the same complaint: recorded once
        ]
    }
    r = await server.admin.post("/api/v1/feedback", json=batch)
    assert r.status_code == 202 and r.json() == {"accepted": 3}, r.text
    # `bounce` may be null in a complaint (it is the same one: recorded once).
    r = await server.admin.post(
        "/api/v1/feedback", json={"PKey": bo["PKey"], "type": "spam", "bounce": None}
    )
    assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text
    kinds = sorted(
        (e["kind"], (e["detail"] or {}).get("bounce")) for e in await log_of(server.admin, bo)
    )
    assert kinds == [("bounced", "soft"), ("spam", None)]
    assert "bo@example.org" not in await quarantined(server.admin)

    # Soft bounces of three messages to one address, in one batch: quarantined by the third.
    cy = {**ADA, "email": "cy@example.org"}
    sent = [(await send_one(server, smtp, event_id, cy))[0] for _ in range(3)]
    soft = [{"PKey": a["PKey"], "type": "bounce", "bounce": "soft"} for a in sent]
    r = await server.admin.post("/api/v1/feedback", json={"items": soft[:1]})
    assert r.status_code == 202, r.text
    assert "cy@example.org" not in await quarantined(server.admin)
    r = await server.admin.post("/api/v1/feedback", json={"items": soft})  # the first already in
    assert r.status_code == 202, r.text
    assert "cy@example.org" in await quarantined(server.admin)

    # An unknown PKey: 404, and nothing of the batch is recorded.
    r = await server.admin.post(
        "/api/v1/feedback",
        json={
            "items": [
                {"PKey": bo["PKey"], "type": "bounce", "bounce": "hard"},
                {"PKey": "0" * 26, "type": "spam"},
            ]
        },
    )
    assert_problem(r, 404)
    assert "bo@example.org" not in await quarantined(server.admin)

    # A message never sent (ada is quarantined now: the typology ignores the next one) can
    # have no bounce nor complaint: 422, and nothing of the batch is recorded.
    again = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, again["href"], "ignored")
    r = await server.admin.post(
        "/api/v1/feedback",
        json={
            "items": [
                {"PKey": bo["PKey"], "type": "bounce", "bounce": "hard"},
                {"PKey": again["PKey"], "type": "bounce", "bounce": "hard"},
            ]
        },
    )
    assert f"{again['PKey']} (ignored)" in assert_problem(r, 422)["detail"]
    assert await log_of(server.admin, again) == []
    assert "bo@example.org" not in await quarantined(server.admin)

    for body, field in (
        ({"type": "spam"}, "PKey"),
        ({"PKey": ada["PKey"], "type": "opened"}, "type"),
        ({"PKey": ada["PKey"], "type": "bounce"}, "bounce"),
        ({"PKey": ada["PKey"], "type": "bounce", "bounce": "medium"}, "bounce"),
        ({"PKey": ada["PKey"], "type": "spam", "bounce": "hard"}, "bounce"),
        ({"PKey": ada["PKey"], "type": "spam", "extra": 1}, "extra"),
        ({"PKey": ada["PKey"], "type": "spam", "reason": 5}, "reason"),
        ({"items": []}, "items"),
        ({"items": [{"PKey": ada["PKey"], "type": "spam"}, {"PKey": 1}]}, "items[1].PKey"),
        ([{"PKey": ada["PKey"], "type": "spam"}], "body"),
    ):
        assert_problem(await server.admin.post("/api/v1/feedback", json=body), 400, field)

    marketer = await create_key(server.admin, "marketer")
    async with server.client(marketer) as client:
        r = await client.post("/api/v1/feedback", json={"PKey": ada["PKey"], "type": "spam"})
        assert_problem(r, 403)
    assert [e["kind"] for e in await log_of(server.admin, ada)] == ["bounced"]


@pytest.mark.server_settings(bounce_listen="127.0.0.1:0", bounce_max_bytes=4096)
async def test_mail_over_the_size_limit_is_refused(server, smtp: FakeSMTPServer) -> None:
    event_id = await bounce_event(server, smtp)
    accepted, mail = await send_one(server, smtp, event_id)
    report = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 unknown", mail)
    report.attach(MIMEText("x" * 8000))
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await deliver(server, mail.mail_from, report)
    assert refused.value.code == 552
    assert await log_of(server.admin, accepted) == []


async def test_a_hard_bounce_reported_after_the_refusal_counts_once(
    server, smtp: FakeSMTPServer
) -> None:
    """The server refused the message (550 5.1.1: a hard bounce, recorded with the send);
    the same bounce reported later (the feedback API, or a DSN) is the same one."""
    event_id = await live_event(server.admin, smtp)
    smtp.fail_next(550, "5.1.1 User unknown", stage="RCPT")
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "deliveryFailed")
    r = await server.admin.post(
        "/api/v1/feedback", json={"PKey": accepted["PKey"], "type": "bounce", "bounce": "hard"}
    )
    assert r.status_code == 202, r.text
    bounced = [e for e in await log_of(server.admin, accepted) if e["kind"] == "bounced"]
    assert [e["detail"]["bounce"] for e in bounced] == ["hard"], bounced
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["bounced_hard"] == 1, r.text


async def test_a_message_refused_at_each_attempt_is_one_soft_bounce(
    server, smtp: FakeSMTPServer
) -> None:
    """A full mailbox refuses three attempts of one message: one soft bounce, not three (three
    would quarantine the address within seconds, and the message's own next attempt with it)."""
    event_id = await live_event(server.admin, smtp)
    smtp.fail_next(452, "4.2.2 Mailbox full", count=3, stage="RCPT")
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed", timeout=15)
    bounced = [e for e in await log_of(server.admin, accepted) if e["kind"] == "bounced"]
    assert [e["detail"]["bounce"] for e in bounced] == ["soft"], bounced
    assert "ada@example.org" not in await quarantined(server.admin)
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["bounced_soft"] == 1, r.text
