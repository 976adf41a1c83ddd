"""One record of the message export dataset: what was sent, to whom, from whom.

Field names follow Adobe Journey Optimizer's message export schema so downstream tools port
over. Records are built by the dispatcher after a send (pure values, no I/O) and written in the
same transaction as the event's `processed` status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from txmsg.core.kinds import Channel

EVENT_TYPE = "message.sent"


@dataclass(frozen=True, slots=True)
class ExportRecord:
    timestamp: datetime  # the send time
    channel: str  # email | sms
    message_id: str  # the event's PKey
    event_id: str
    publication_id: str | None  # the published template version: "<eventId>/<version>"
    is_test: bool = False
    profile_id: str | None = None
    # recipient
    recipient_email: str | None = None
    recipient_name: str | None = None
    recipient_number: str | None = None
    # sender
    sender_email: str | None = None
    sender_name: str | None = None
    sender_reply_to: str | None = None
    sender_numbers: tuple[str, ...] | None = None
    # content
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    message: str | None = None


def publication_id(event_id: str, version: int | None) -> str | None:
    return None if version is None else f"{event_id}/{version}"


def email_record(
    *,
    pkey: str,
    event_id: str,
    version: int | None,
    sent_at: datetime,
    to_email: str,
    to_name: str | None,
    from_email: str,
    from_name: str | None,
    reply_to: str | None,
    subject: str | None,
    html: str | None,
    text: str | None,
    profile_id: str | None = None,
    is_test: bool = False,
) -> ExportRecord:
    return ExportRecord(
        timestamp=sent_at,
        channel=Channel.EMAIL,
        message_id=pkey,
        event_id=event_id,
        publication_id=publication_id(event_id, version),
        is_test=is_test,
        profile_id=profile_id,
        recipient_email=to_email,
        recipient_name=to_name,
        sender_email=from_email,
        sender_name=from_name,
        sender_reply_to=reply_to,
        subject=subject,
        html=html,
        text=text,
    )


def sms_record(
    *,
    pkey: str,
    event_id: str,
    version: int | None,
    sent_at: datetime,
    to_number: str,
    from_numbers: list[str] | tuple[str, ...],
    message: str,
    profile_id: str | None = None,
    is_test: bool = False,
) -> ExportRecord:
    return ExportRecord(
        timestamp=sent_at,
        channel=Channel.SMS,
        message_id=pkey,
        event_id=event_id,
        publication_id=publication_id(event_id, version),
        is_test=is_test,
        profile_id=profile_id,
        recipient_number=to_number,
        sender_numbers=tuple(from_numbers),
        message=message,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    """The dataset keeps times as UTC epoch microseconds: Arrow takes them without parsing."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def iso_micros(value: int) -> str:
    return from_micros(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def encode_numbers(numbers: tuple[str, ...]) -> str:
    """SMS sender numbers as stored: a JSON array in a text column (plain on both engines)."""
    return json.dumps(list(numbers))


def decode_numbers(stored: str | None) -> list[str] | None:
    return None if stored is None else list(json.loads(stored))


def document(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record (the dataset's columns by name) as JSON: NDJSON files and the API.

    Each channel carries its own fields (email: recipient email/name, sender email/name/
    replyToEmail, content subject/html/text; sms: recipient number, sender numbers, content
    message).
    """
    out: dict[str, Any] = {
        "timestamp": iso_micros(row["timestamp_us"]),
        "ingestion_time": iso_micros(row["ingestion_us"]),
        "eventType": EVENT_TYPE,
        "channel": row["channel"],
        "messageID": row["message_id"],
        "eventId": row["event_id"],
        "messagePublicationID": row["publication_id"],
        "isTestExecution": bool(row["is_test"]),
    }
    if row["channel"] == Channel.SMS:
        out["recipient"] = {"number": row["recipient_number"]}
        out["sender"] = {"numbers": decode_numbers(row["sender_numbers"])}
        out["content"] = {"message": row["message"]}
    else:
        out["recipient"] = {"email": row["recipient_email"], "name": row["recipient_name"]}
        out["sender"] = {
            "email": row["sender_email"],
            "name": row["sender_name"],
            "replyToEmail": row["sender_reply_to"],
        }
        out["content"] = {"subject": row["subject"], "html": row["html"], "text": row["text"]}
    if row["profile_id"] is not None:
        out["profileID"] = row["profile_id"]
    return out
