"""Feedback on a message after its acceptance: a bounce (hard or soft) or a spam complaint.

It comes from an inbound report (a DSN or an ARF complaint sent to the bounce listener) or from
a provider's HTTP call (`POST /api/v1/feedback`); either way it is recorded by the write funnel
with the quarantine (bounces) or the denylist (complaints) of the message's address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from txmsg.core.errors import DomainError, FieldError, invalid, unprocessable
from txmsg.core.validation import get_choice, get_str, reject_unknown, require_object


class FeedbackKind(StrEnum):
    BOUNCE = "bounce"
    SPAM = "spam"


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a report says about the message `pkey`; `hard` only for bounces."""

    pkey: str
    kind: FeedbackKind
    reason: str
    at: datetime
    source: str  # "dsn" | "arf" | "api"
    hard: bool = False

    @property
    def dedupe_key(self) -> tuple[str, str, str | None]:
        """Reports with the same key are one: a message bounces hard once, complains once."""
        cls = ("hard" if self.hard else "soft") if self.kind == FeedbackKind.BOUNCE else None
        return (self.pkey, "bounced" if self.kind == FeedbackKind.BOUNCE else "spam", cls)


SPAM_REASON = "spam complaint"


@dataclass(frozen=True, slots=True)
class FeedbackBatch:
    """Reports recorded together (one report from the listener, a batch from the API): the
    write funnel records all of them or none."""

    reports: tuple[Feedback, ...]


FEEDBACK_TYPES = ("bounce", "spam")
BOUNCE_CLASSES = ("hard", "soft")
MAX_BATCH = 1000
_REPORT_FIELDS = {"PKey", "type", "bounce", "reason"}


def parse_reports(body: object, at: datetime) -> list[Feedback]:
    """`POST /api/v1/feedback`: one report object, or `{"items": [report, ...]}`."""
    body = require_object(body)
    if "items" in body:
        reject_unknown(body, {"items"})
        items = body["items"]
        if not isinstance(items, list) or not items:
            raise invalid("items", "must be a non-empty array of reports")
        if len(items) > MAX_BATCH:
            raise invalid("items", f"must hold at most {MAX_BATCH} reports")
        return [_report(item, f"items[{i}].", at) for i, item in enumerate(items)]
    return [_report(body, "", at)]


def _report(raw: object, prefix: str, at: datetime) -> Feedback:
    body = require_object(raw, prefix.rstrip(".") or "body")
    reject_unknown(body, _REPORT_FIELDS, prefix)
    pkey = get_str(body, "PKey", prefix=prefix, required=True, max_length=40)
    kind = get_choice(body, "type", FEEDBACK_TYPES, prefix=prefix, required=True)
    reason = get_str(body, "reason", prefix=prefix, max_length=500)
    assert pkey is not None and kind is not None
    if kind == "bounce":
        klass = get_choice(body, "bounce", BOUNCE_CLASSES, prefix=prefix, required=True)
        hard = klass == "hard"
        return Feedback(
            pkey, FeedbackKind.BOUNCE, reason or f"{klass} bounce reported", at, "api", hard
        )
    if body.get("bounce") is not None:
        raise invalid(prefix + "bounce", "is only for reports of type bounce")
    return Feedback(pkey, FeedbackKind.SPAM, reason or SPAM_REASON, at, "api")


def never_sent(batch: bool, unsent: list[tuple[int, str, str]]) -> DomainError:
    """The 422 for reports about messages no provider saw (`(index, PKey, status)` each, in
    the body's order): queued, paused, ignored or expired before any attempt reached one, so
    no bounce or complaint can be about them. It names each report's `PKey` field."""
    reason = "no provider saw this message (never sent): no bounce or complaint can be about it"
    errors = [
        FieldError(f"items[{i}].PKey" if batch else "PKey", f"{reason} ({status})")
        for i, _, status in unsent
    ]
    named = [f"{pkey} ({status})" for _, pkey, status in unsent]
    some = ", ".join(named[:5]) + (" ..." if len(named) > 5 else "")
    return unprocessable(
        f"never sent, so no feedback can be about it: {some}; nothing was recorded", errors
    )
