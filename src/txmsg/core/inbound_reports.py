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

import email
import email.parser
import email.utils
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
_HEADERS = email.parser.HeaderParser()
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
    message = email.message_from_bytes(raw)
    if message.get_content_type() != "multipart/report":
        return _NOTHING
    report_type = email.utils.collapse_rfc2231_value(message.get_param("report-type") or "")
    report_type = report_type.lower()
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
        multipart = part.get_content_maintype() == "multipart" and isinstance(payload, list)
        if multipart and depth < MAX_DEPTH:
            children = [p for p in payload[:MAX_PARTS] if isinstance(p, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))
    return found


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # not parsed as header blocks: read them ourselves
        return [_HEADERS.parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", payload)]
    return []


def _part(parts: list[Message], content_type: str) -> Message | None:
    return next((p for p in parts if p.get_content_type() == content_type), None)


def _delivery_status(parts: list[Message]) -> InboundReport:
    status_part = _part(parts, "message/delivery-status")
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
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                headers = payload[0]
                break
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                headers = _HEADERS.parsestr(text.decode("utf-8", "replace"))
                break
    if headers is None:
        return []
    return [_one_line(v) for v in headers.get_all("Return-Path") or []]
