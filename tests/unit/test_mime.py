"""build_email output must be well formed to the standard library's parser."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr

from dkim_support import ed25519_pem, verify
from txmsg.core.dkim import DkimSettings, dns_records, load_key
from txmsg.core.dkim_signer import DkimSigner, sign
from txmsg.core.mime import Sender, build_email

DATE = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
SENDER = Sender.build("shop@example.com", "Shop", "help@example.com")


def build(
    subject: str = "Your order",
    text: str | None = "Hello Ann",
    html: str | None = "<p>Hello Ann</p>",
    sender: Sender = SENDER,
) -> bytes:
    return build_email(
        sender, "ann@example.com", subject, text, html, message_id="m-123", date=DATE
    )


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def assert_no_defects(message: EmailMessage) -> None:
    for part in message.walk():
        assert part.defects == []
        for name, value in part.items():
            assert value.defects == (), name


def body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return part.get_content().replace("\r\n", "\n")


def test_multipart_alternative_text_then_html() -> None:
    message = parse(build(text="Hi Ann,\nyour order shipped.", html="<p>Shipped</p>"))
    assert_no_defects(message)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    # In a multipart the CRLF before a delimiter belongs to the delimiter: bodies are exact.
    assert body(message, "plain") == "Hi Ann,\nyour order shipped."
    assert body(message, "html") == "<p>Shipped</p>"


def test_envelope_headers() -> None:
    message = parse(build())
    assert message["From"] == "Shop <shop@example.com>"
    assert message["To"] == "ann@example.com"
    assert message["Reply-To"] == "help@example.com"
    assert message["Message-ID"] == "<m-123@example.com>"
    assert message["Date"].datetime == DATE
    assert message["MIME-Version"] == "1.0"


def test_utf8_subject_and_display_name_round_trip() -> None:
    sender = Sender.build("shop@example.com", 'Zoë, Ümlaut "Shop" 店', None)
    subject = "Ihre Bestellung über 12 € ist unterwegs — 注文 " * 5
    raw = build(subject=subject, sender=sender)
    assert raw.isascii()
    message = parse(raw)
    assert_no_defects(message)
    assert message["Subject"] == subject.strip()
    [address] = message["From"].addresses
    assert address.display_name == 'Zoë, Ümlaut "Shop" 店'
    assert address.addr_spec == "shop@example.com"
    assert message["Reply-To"] is None


def test_utf8_body_round_trips() -> None:
    message = parse(build(text="Grüße, Zoë ✓\n", html="<p>Grüße ✓</p>"))
    assert body(message, "plain") == "Grüße, Zoë ✓\n"
    assert body(message, "html") == "<p>Grüße ✓</p>"


def test_header_injection_through_subject_is_neutralised() -> None:
    raw = build(subject="Hello\r\nBcc: x@y")
    message = parse(raw)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: x@y"
    assert not any(line.lower().startswith(b"bcc:") for line in raw.split(b"\r\n"))


def test_header_injection_through_display_name_is_neutralised() -> None:
    sender = Sender.build("shop@example.com", "Shop\r\nBcc: x@y", None)
    message = parse(build(sender=sender))
    assert message["Bcc"] is None
    assert message["From"].addresses[0].addr_spec == "shop@example.com"


def test_lines_stay_within_998_octets_and_use_crlf() -> None:
    long_word = "x" * 5000
    raw = build(subject="s" * 2000, text=long_word + "\n" + "é" * 3000, html=long_word)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(raw)
    assert_no_defects(message)
    assert message["Subject"] == "s" * 2000
    assert body(message, "plain") == long_word + "\n" + "é" * 3000
    assert body(message, "html") == long_word


def test_body_cannot_forge_a_mime_boundary() -> None:
    text = "--=_txmsg_000\nContent-Type: text/html\n\n<script>x</script>\n"
    message = parse(build(text=text))
    assert_no_defects(message)
    assert len(list(message.iter_parts())) == 2
    assert body(message, "plain") == text


def test_text_only() -> None:
    message = parse(build(text="Just text", html=None))
    assert_no_defects(message)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert body(message, "plain") == "Just text\n"
    assert body(message, "html") is None
    assert message["Message-ID"] == "<m-123@example.com>"
    assert message["Date"].datetime == DATE


def test_html_only() -> None:
    message = parse(build(text=None, html="<b>Only</b>"))
    assert_no_defects(message)
    assert message.get_content_type() == "text/html"
    assert body(message, "html") == "<b>Only</b>\n"
    assert body(message, "plain") is None
    assert message["Message-ID"] == "<m-123@example.com>"
    assert message["Date"] is not None


def test_extra_headers_are_encoded_and_cannot_inject() -> None:
    sender = Sender.build("shop@example.com", "Shop", None)
    data = build_email(
        sender,
        "ada@example.org",
        "Hi",
        "text",
        None,
        message_id="PK1",
        date=datetime.now(UTC),
        extra_headers=(("X-Campaign", "Noël\r\nBcc: evil@example.com"),),
    )
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    assert msg["X-Campaign"] == "Noël Bcc: evil@example.com"
    assert msg["Bcc"] is None


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def legacy_display_name(raw: bytes) -> tuple[str, str]:
    """The From header's name and address as RFC 2047 says to read them: whitespace between
    two encoded-words is dropped (the default policy's address parser keeps it)."""
    value = email.message_from_bytes(raw, policy=email.policy.compat32)["From"]
    name, address = parseaddr(value.replace("\r\n", ""))
    return str(make_header(decode_header(name))), address


def test_a_long_non_ascii_display_name_is_folded_encoded_words() -> None:
    name = "商店" * 160  # 960 UTF-8 bytes: one encoded-word made a 1,317-octet line
    raw = build(sender=Sender.build("shop@example.com", name, None))
    assert max(len(line) for line in header_lines(raw)) <= 78
    words = re.findall(rb"=\?utf-8\?b\?[^?]*\?=", raw)
    assert len(words) > 20 and max(len(w) for w in words) <= 75
    message = parse(raw)
    assert_no_defects(message)
    assert message["From"].addresses[0].addr_spec == "shop@example.com"
    assert legacy_display_name(raw) == (name, "shop@example.com")


def test_a_display_name_that_reads_as_an_encoded_word_shows_as_written() -> None:
    for name in ("=?utf-8?b?RXZpbA==?=", "Shop =?utf-8?q?Evil?= Inc"):
        message = parse(build(sender=Sender.build("shop@example.com", name, None)))
        assert_no_defects(message)
        assert message["From"].addresses[0].display_name == name


def test_long_headers_fold_at_78() -> None:
    name = "The Very Long Name of a Shop, Selling Everything Anyone Could Want, Worldwide"
    ascii_subject = "Your order of twelve items has shipped and will arrive soon " * 4
    for subject in (ascii_subject, "Ihre Bestellung über 12 € ist unterwegs " * 4):
        raw = build(subject=subject, sender=Sender.build("shop@example.com", name, None))
        assert max(len(line) for line in header_lines(raw)) <= 78
        message = parse(raw)
        assert_no_defects(message)
        assert message["Subject"] == subject.strip()
        assert message["From"].addresses[0].display_name == name


def test_folded_headers_keep_their_dkim_signature() -> None:
    loaded = load_key(ed25519_pem())
    settings = DkimSettings("example.com", "s1", loaded.algorithm, loaded.signing_key)
    dkim = {"domain": "example.com", "selector": "s1", "algorithm": settings.algorithm}
    record = dns_records("shop@example.com", None, dkim, loaded.signing_key.decode())["dkim"]
    sender = Sender.build("shop@example.com", "商店 Example Shop, Worldwide " * 6, None)
    raw = build(subject="Your order of twelve items has shipped " * 5, sender=sender)
    signed = sign(DkimSigner(settings), raw) + raw
    assert verify(signed, {record["name"]: record["value"]})
