"""Reading mail sent back to the bounce listener: DSNs (RFC 3464) and ARF complaints (RFC 5965).

Parsed with the standard library's `email` package. What counts:
- a delivery status notification (`multipart/report; report-type=delivery-status`) whose
  recipient block says `Action: failed`, classified as a send's own refusal is
  (core/bounces.py `classify`, with the block's Status): a **hard** bounce when the address
  does not exist (`5.1.1`, `5.2.1` mailbox disabled, a `5xx` reply saying "user unknown"...),
  a **soft** one for a full mailbox (`x.2.2`, over quota); policy refusals (`x.7.x`),
  sender-side failures (`5.1.7`, `5.1.8`) and other failures are not recorded. `delayed` (the
  MTA is still trying: its final word comes later), `delivered`, `relayed` and `expanded` are
  not bounces either;
- a feedback report (`report-type=feedback-report`) with `Feedback-Type: abuse`: a **spam**
  complaint (other feedback types, such as `not-spam` or `auth-failure`, are not recorded);
- anything else (auto-replies, out-of-office notes, plain-text bounces): nothing.
The message a report is about is named by its VERP recipient. A feedback loop's fixed address
(`fbl@<bounce domain>`) reads ARF complaints only, and names their message only by a signed
VERP address the receiver recorded as the original's envelope sender: the attached original's
`Return-Path`, or the report's `Original-Mail-From` field (see `complained_message`). The
original's Message-ID is never used: it holds the PKey unsigned, which is not secret.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.parser
import email.policy
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from txmsg.core.bounces import classify, enhanced_status
from txmsg.core.feedback import SPAM_REASON, FeedbackKind
from txmsg.core.verp import read_bounce_address

_SPACES = re.compile(r"\s+")
# Control characters (NUL among them: PostgreSQL refuses it in text) and lone surrogates (bytes
# that were not UTF-8): never part of a reason worth keeping.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The modern policy: RFC 2231 parameters (`report-type*=`, continuations) and UTF-8 headers
# (RFC 6532) are decoded.
_POLICY = email.policy.default
_HEADERS = email.parser.HeaderParser(policy=_POLICY)
# RFC 6533 internationalized reports use the `global` types.
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_HEADERS_TYPES = ("text/rfc822-headers", "message/global-headers")
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
_MAX_REASON = 500
# A report is a few parts, one level deep (its attached original is not walked into), with a
# block per recipient: anything bigger is read this far only.
MAX_PARTS = 50
MAX_DEPTH = 3
MAX_RECIPIENTS = 100


@dataclass(frozen=True, slots=True)
class InboundReport:
    """What a report says (`kind` None: nothing to record) and how to find its message."""

    kind: FeedbackKind | None
    hard: bool = False
    reason: str = ""
    # The original message's envelope sender as its receiver recorded it (ARF only).
    original_senders: tuple[str, ...] = ()


_NOTHING = InboundReport(None)


def _one_line(value: object) -> str:
    """A report field as one printable line: control characters read as spaces."""
    return _SPACES.sub(" ", _UNPRINTABLE.sub(" ", str(value or ""))).strip()


def parse(raw: bytes) -> InboundReport:
    """The report in a raw inbound message (CRLF or LF line endings).

    May raise on pathological input (the `email` parser recurses, e.g. a RecursionError for
    a thousand nested messages): the caller refuses such a message.
    """
    message = email.message_from_bytes(raw, policy=_POLICY)
    if message.get_content_type() != "multipart/report":
        return _NOTHING
    report_type = str(message.get_param("report-type") or "").lower()
    parts = _walk(message)
    if report_type == "delivery-status":
        return _delivery_status(parts)
    if report_type == "feedback-report":
        return _feedback(parts)
    return _NOTHING


def complained_message(report: InboundReport, secret: str, domains: frozenset[str]) -> str | None:
    """The PKey of the message an ARF complaint sent to a feedback loop's address is about:
    read from a genuine (signed) VERP address among the original's recorded senders; None for
    anything else (a DSN, an unsigned or altered address)."""
    if report.kind != FeedbackKind.SPAM:
        return None
    for sender in report.original_senders:
        pkey = read_bounce_address(secret, sender, domains)
        if pkey is not None:
            return pkey
    return None


def _walk(message: Message) -> list[Message]:
    """The parts of a report, in order: into multipart parts only (not into an attached
    message), at most MAX_DEPTH levels and MAX_PARTS parts."""
    found: list[Message] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack and len(found) < MAX_PARTS:
        part, depth = stack.pop()
        if part is not message:
            found.append(part)
        payload = part.get_payload()
        multipart = part.get_content_maintype() == "multipart"
        if multipart and isinstance(payload, list) and depth < MAX_DEPTH:
            children = [p for p in payload[:MAX_PARTS] if isinstance(p, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))
    return found


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a status or feedback part, read from its decoded text."""
    text = _body_text(part)
    return [_HEADERS.parsestr(b.lstrip("\r\n")) for b in _BLANK_LINE.split(text) if b.strip()]


def _body_text(part: Message) -> str:
    """A `message/*` part's body as text, its Content-Transfer-Encoding undone. The parser
    splits some of them into messages (delivery-status into blocks, the others into one
    message) without decoding: they are put back together first."""
    payload = part.get_payload()
    if isinstance(payload, list):
        data = b"\n".join(p.as_bytes() for p in payload if isinstance(p, Message))
    else:  # 8-bit bytes are kept in the text as surrogates: back to bytes
        data = str(payload or "").encode("utf-8", "surrogateescape")
    encoding = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    try:
        if encoding == "base64":
            data = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data))
        elif encoding == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return ""
    return data.decode("utf-8", "replace")


def _part(parts: list[Message], *content_types: str) -> Message | None:
    return next((p for p in parts if p.get_content_type() in content_types), None)


def _delivery_status(parts: list[Message]) -> InboundReport:
    status_part = _part(parts, *_STATUS_TYPES)
    if status_part is None:
        return _NOTHING
    worst: InboundReport | None = None
    # The first block holds per-message fields; the ones after it, one per recipient.
    for block in _blocks(status_part)[1 : MAX_RECIPIENTS + 1]:
        action = _one_line(block.get("Action")).lower().split(" ")[0]
        if action != "failed":
            continue
        status = enhanced_status(_one_line(block.get("Status")))
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        reply = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        status = status or enhanced_status(reply)
        # The MTA gave up: permanent unless the status (or reply) says it was temporary.
        permanent = status.startswith("5") if status else not reply.startswith("4")
        hard = classify(reply, permanent, status)
        if hard is None:
            continue  # a policy or sender-side refusal, or a temporary one: no bounce
        reason = (reply or f"status {status or 'unknown'}")[:_MAX_REASON]
        if status and status not in reason:
            reason = f"{status} {reason}"[:_MAX_REASON]
        found = InboundReport(FeedbackKind.BOUNCE, hard, reason)
        if worst is None or (hard and not worst.hard):
            worst = found
    return worst or _NOTHING


def _feedback(parts: list[Message]) -> InboundReport:
    report = _part(parts, "message/feedback-report")
    if report is None:
        return _NOTHING
    blocks = _blocks(report)
    if not blocks:
        return _NOTHING
    feedback_type = _one_line(blocks[0].get("Feedback-Type")).lower()
    if feedback_type != "abuse":
        return _NOTHING
    senders = [_one_line(v) for v in blocks[0].get_all("Original-Mail-From") or []]
    senders.extend(_original_return_paths(parts))
    return InboundReport(
        FeedbackKind.SPAM, False, SPAM_REASON, original_senders=tuple(s for s in senders if s)
    )


def _original_return_paths(parts: list[Message]) -> list[str]:
    """The Return-Path fields of the original message attached to a report, if any."""
    headers: Message | None = None
    for part in parts:
        kind = part.get_content_type()
        if kind in _MESSAGE_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                headers = payload[0]
                break
        elif kind in _HEADERS_TYPES:
            headers = _HEADERS.parsestr(_body_text(part))
            break
    if headers is None:
        return []
    return [_one_line(v) for v in headers.get_all("Return-Path") or []]
