"""Reading DSNs and ARF reports (pure), and VERP addresses: the cases the end-to-end tests
do not cover one by one."""

from __future__ import annotations

import base64
import quopri

import pytest

from txmsg.core.feedback import FeedbackKind
from txmsg.core.inbound_reports import complained_message, parse
from txmsg.core.verp import bounce_address, is_feedback_address, read_bounce_address

PKEY = "06H0N5J4WZ1279TSB9Z0J6KKER"
DOMAINS = frozenset({"bounces.example.com"})


def dsn(*recipients: str, original: str = "") -> bytes:
    blocks = "".join(f"\n{r.strip()}\n" for r in recipients)
    attached = (
        f"--B\nContent-Type: text/rfc822-headers\n\n{original.strip()}\n\n" if original else ""
    )
    return (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nSorry.\n\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n"
        f"{blocks}\n{attached}--B--\n"
    ).encode()


@pytest.mark.parametrize(
    ("block", "hard", "reason"),
    [
        (
            "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user",
            True,
            "550 5.1.1 no such user",
        ),
        (
            "Action: failed\nStatus: 5.2.1\nDiagnostic-Code: smtp; 550 mailbox disabled",
            True,
            "5.2.1 550 mailbox disabled",
        ),
        # No Status field: the enhanced code of the diagnostic decides.
        (
            "Action: failed\nDiagnostic-Code: smtp; 550 5.1.10 recipient not found",
            True,
            "550 5.1.10 recipient not found",
        ),
        # Neither: the wording of a 5xx reply does.
        ("Action: failed\nDiagnostic-Code: smtp;\n 550 User unknown", True, "550 User unknown"),
        (
            "Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 Mailbox full",
            False,
            "5.2.2 552 Mailbox full",
        ),
    ],
)
def test_failed_recipients_bounce(block: str, hard: bool, reason: str) -> None:
    report = parse(dsn("Final-Recipient: rfc822; ada@example.org\n" + block))
    assert (report.kind, report.hard, report.reason) == (FeedbackKind.BOUNCE, hard, reason)


@pytest.mark.parametrize(
    "block",
    [
        # Policy refusals and our own address refused say nothing about the recipient's.
        "Action: failed\nStatus: 5.7.1\nDiagnostic-Code: smtp; 554 rejected as spam",
        "Action: failed\nStatus: 5.7.26\nDiagnostic-Code: smtp; 550 5.7.26 DMARC policy",
        "Action: failed\nDiagnostic-Code: smtp; 550 5.7.1 Recipient address rejected: blocked",
        "Action: failed\nStatus: 5.1.8\nDiagnostic-Code: smtp; 553 5.1.8 Sender domain unknown",
        "Action: failed\nStatus: 5.1.7\n",
        # A temporary failure the MTA gave up on: not the address's fault either.
        "Action: failed\nStatus: 4.4.7\n",
    ],
)
def test_failures_that_are_no_bounce(block: str) -> None:
    assert parse(dsn("Final-Recipient: rfc822; ada@example.org\n" + block)).kind is None


@pytest.mark.parametrize("action", ["delayed", "delivered", "relayed", "expanded"])
def test_other_actions_are_not_bounces(action: str) -> None:
    block = f"Final-Recipient: rfc822; ada@example.org\nAction: {action}\nStatus: 4.4.1\n"
    assert parse(dsn(block)).kind is None


def test_the_worst_recipient_counts() -> None:
    soft = "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 4.2.2"
    hard = "Final-Recipient: rfc822; b@example.org\nAction: failed\nStatus: 5.1.1"
    report = parse(dsn(soft, hard))
    assert report.hard is True


def arf(original: str, fields: str = "") -> bytes:
    return (
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nA complaint.\n\n"
        "--B\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n"
        f"{fields}\n"
        f"--B\nContent-Type: text/rfc822-headers\n\n{original.strip()}\n\n--B--\n"
    ).encode()


def test_a_complaint_names_its_message_by_a_signed_verp_sender_only() -> None:
    verp = bounce_address("secret", PKEY, "bounces.example.com")
    # The original's Return-Path, or the envelope sender the receiver recorded in the report.
    for raw in (
        arf(f"Return-Path: <{verp}>\nMessage-ID: <x@example.com>"),
        arf("Message-ID: <x@example.com>", f"Original-Mail-From: <{verp}>\n"),
    ):
        report = parse(raw)
        assert report.kind == FeedbackKind.SPAM
        assert complained_message(report, "secret", DOMAINS) == PKEY
        assert complained_message(report, "other secret", DOMAINS) is None
    # The PKey in the Message-ID is not signed: it names nothing.
    unsigned = parse(arf(f"Return-Path: <shop@example.com>\nMessage-ID: <{PKEY}@example.com>"))
    assert unsigned.kind == FeedbackKind.SPAM
    assert complained_message(unsigned, "secret", DOMAINS) is None
    # A DSN never names a message through its attached original.
    bounce = parse(
        dsn(
            "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1",
            original=f"Return-Path: <{verp}>",
        )
    )
    assert bounce.kind == FeedbackKind.BOUNCE
    assert complained_message(bounce, "secret", DOMAINS) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: Out of office\n\nBack on Monday.\n",
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nread\n--B--\n",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nno status part\n--B--\n",
        b"\xff\xfe not even headers",
        b"",
    ],
)
def test_anything_else_is_nothing(raw: bytes) -> None:
    assert parse(raw).kind is None


def test_verp_addresses() -> None:
    address = bounce_address("secret", PKEY, "bounces.example.com")
    local = address.partition("@")[0]
    assert local == local.lower() and len(local) <= 64
    assert read_bounce_address("secret", address, DOMAINS) == PKEY
    assert read_bounce_address("secret", f"<{address.upper()}>", DOMAINS) == PKEY
    assert read_bounce_address("other secret", address, DOMAINS) is None
    assert read_bounce_address("secret", address, frozenset({"example.com"})) is None
    # Another PKey under this signature, a truncated one, garbage.
    other = address.replace(PKEY.lower(), "0" * 26)
    assert read_bounce_address("secret", other, DOMAINS) is None
    assert read_bounce_address("secret", address[:-30] + "@bounces.example.com", DOMAINS) is None
    assert read_bounce_address("secret", "b-é@bounces.example.com", DOMAINS) is None
    assert read_bounce_address("secret", "", DOMAINS) is None
    assert is_feedback_address("FBL@Bounces.Example.com", DOMAINS)
    assert not is_feedback_address("fbl@example.com", DOMAINS)


FAILED_BLOCK = (
    "Reporting-MTA: dns; mx.example.org\n\n"
    "Final-Recipient: rfc822; ada@example.org\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 utilisateur inconnu é\n"
)


def report_of(status_headers: str, status_body: bytes, report_type: str) -> bytes:
    return (
        f'Content-Type: multipart/report; {report_type}; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\nSorry.\n\n--B\n{status_headers}\n\n".encode()
        + status_body
        + b"\n--B--\n"
    )


@pytest.mark.parametrize(
    ("status_headers", "status_body", "report_type"),
    [
        # RFC 6533: an internationalized DSN, its UTF-8 fields as they are.
        (
            "Content-Type: message/global-delivery-status",
            FAILED_BLOCK.encode(),
            "report-type=delivery-status",
        ),
        # The status part in base64 or quoted-printable.
        (
            "Content-Type: message/global-delivery-status\nContent-Transfer-Encoding: base64",
            base64.encodebytes(FAILED_BLOCK.encode()),
            "report-type=delivery-status",
        ),
        (
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64",
            base64.encodebytes(FAILED_BLOCK.encode()),
            "report-type=delivery-status",
        ),
        (
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: quoted-printable",
            quopri.encodestring(FAILED_BLOCK.encode()),
            "report-type=delivery-status",
        ),
        # RFC 2231 parameters: with a charset, or in continuations.
        (
            "Content-Type: message/delivery-status",
            FAILED_BLOCK.encode(),
            "report-type*=us-ascii'en'delivery-status",
        ),
        (
            "Content-Type: message/delivery-status",
            FAILED_BLOCK.encode(),
            'report-type*0="delivery"; report-type*1="-status"',
        ),
    ],
)
def test_encoded_and_internationalized_dsns(
    status_headers: str, status_body: bytes, report_type: str
) -> None:
    report = parse(report_of(status_headers, status_body, report_type))
    assert (report.kind, report.hard) == (FeedbackKind.BOUNCE, True)
    assert report.reason == "550 5.1.1 utilisateur inconnu é"


@pytest.mark.parametrize(
    ("kind", "encoding"),
    [("message/global", "8bit"), ("message/global-headers", "8bit"), ("message/rfc822", "7bit")],
)
def test_a_complaint_about_an_internationalized_original(kind: str, encoding: str) -> None:
    verp = bounce_address("secret", PKEY, "bounces.example.com")
    original = f"Return-Path: <{verp}>\nSubject: Été\nMessage-ID: <x@example.com>\n\n"
    raw = (
        'Content-Type: multipart/report; report-type="feedback-report"; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nA complaint.\n\n"
        "--B\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n\n"
        f"--B\nContent-Type: {kind}\nContent-Transfer-Encoding: {encoding}\n\n{original}--B--\n"
    ).encode()
    report = parse(raw)
    assert report.kind == FeedbackKind.SPAM
    assert complained_message(report, "secret", DOMAINS) == PKEY
