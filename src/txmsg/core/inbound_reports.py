"""Reading mail sent back to the bounce listener: DSNs (RFC 3464) and ARF complaints (RFC 5965).

Parsed with the standard library's `email` package. What counts:
- a delivery status notification (`multipart/report; report-type=delivery-status`) whose
  recipient block says `Action: failed`: a **hard** bounce when the status says the address
  does not exist (`5.1.x`, `5.2.1` mailbox disabled, or a `5xx` reply saying "user unknown"
  and the like), a **soft** bounce otherwise (mailbox full, over quota, a 4.x.x status the
  sending MTA gave up on, a policy refusal). `delayed` (the MTA is still trying: its final word
  comes later), `delivered`, `relayed` and `expanded` are not bounces and are not recorded;
- a feedback report (`report-type=feedback-report`) with `Feedback-Type: abuse`: a **spam**
  complaint (other feedback types, such as `not-spam` or `auth-failure`, are not recorded);
- anything else (auto-replies, out-of-office notes, plain-text bounces): nothing.
The message a report is about is named by its VERP recipient; failing that (a feedback loop's
fixed address) by the attached original message's `Return-Path` or `Message-ID`.
"""

from __future__ import annotations

import email
import email.parser
import email.utils
import re
from dataclasses import dataclass
from email.message import Message

from txmsg.core.bounces import is_hard_bounce
from txmsg.core.feedback import SPAM_REASON, FeedbackKind

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"^\s*([245])\d\d\b")
_SPACES = re.compile(r"\s+")
_HEADERS = email.parser.HeaderParser()
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class InboundReport:
    """What a report says (`kind` None: nothing to record) and how to find its message."""

    kind: FeedbackKind | None
    hard: bool = False
    reason: str = ""
    original_return_path: str | None = None
    original_message_id: str | None = None


_NOTHING = InboundReport(None)


def _one_line(value: object) -> str:
    return _SPACES.sub(" ", str(value or "")).strip()


def parse(raw: bytes) -> InboundReport:
    """The report in a raw inbound message (CRLF or LF line endings)."""
    message = email.message_from_bytes(raw)
    if message.get_content_type() != "multipart/report":
        return _NOTHING
    report_type = email.utils.collapse_rfc2231_value(message.get_param("report-type") or "")
    report_type = report_type.lower()
    parts = [p for p in message.walk() if p is not message]
    original = _original(parts)
    if report_type == "delivery-status":
        return _delivery_status(parts, original)
    if report_type == "feedback-report":
        return _feedback(parts, original)
    return _NOTHING


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # not parsed as header blocks: read them ourselves
        return [_HEADERS.parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", payload)]
    return []


Original = tuple[str | None, str | None]


def _part(parts: list[Message], content_type: str) -> Message | None:
    return next((p for p in parts if p.get_content_type() == content_type), None)


def _delivery_status(parts: list[Message], original: Original) -> InboundReport:
    status_part = _part(parts, "message/delivery-status")
    if status_part is None:
        return _NOTHING
    worst: InboundReport | None = None
    # The first block holds per-message fields; the ones after it, one per recipient.
    for block in _blocks(status_part)[1:]:
        action = _one_line(block.get("Action")).lower().split(" ")[0]
        if action != "failed":
            continue
        status_match = _STATUS.search(_one_line(block.get("Status")))
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        reply = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        if status_match is None:
            status_match = _STATUS.search(reply)
        status = status_match.group(0) if status_match else None
        hard = _is_hard(status, reply)
        reason = (reply or f"status {status or 'unknown'}")[:_MAX_REASON]
        if status and status not in reason:
            reason = f"{status} {reason}"[:_MAX_REASON]
        found = InboundReport(FeedbackKind.BOUNCE, hard, reason, *original)
        if worst is None or (hard and not worst.hard):
            worst = found
    return worst or _NOTHING


def _is_hard(status: str | None, reply: str) -> bool:
    if status is not None:
        klass, subject, detail = status.split(".")
        if klass != "5":
            return False
        if subject == "1" or (subject, detail) == ("2", "1"):
            return True
    return bool(_BASIC.match(reply)) and is_hard_bounce(reply)


def _feedback(parts: list[Message], original: Original) -> InboundReport:
    report = _part(parts, "message/feedback-report")
    if report is None:
        return _NOTHING
    blocks = _blocks(report)
    if not blocks:
        return _NOTHING
    feedback_type = _one_line(blocks[0].get("Feedback-Type")).lower()
    if feedback_type != "abuse":
        return _NOTHING
    return InboundReport(FeedbackKind.SPAM, False, SPAM_REASON, *original)


def _original(parts: list[Message]) -> Original:
    """(Return-Path, Message-ID) of the original message attached to a report, if any."""
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
        return None, None
    return_path = headers.get("Return-Path")
    message_id = headers.get("Message-ID")
    return (
        _one_line(return_path) or None if return_path else None,
        _one_line(message_id) or None if message_id else None,
    )
