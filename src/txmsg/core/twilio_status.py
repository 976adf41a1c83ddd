"""Twilio status callbacks as delivery-log entries (interaction events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from txmsg.core.delivery import Interaction, LogEntry

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"


def status_callback_url(base_url: str, pkey: str) -> str:
    """Where Twilio reports a message's status; the PKey in it names the event."""
    return f"{base_url.rstrip('/')}{STATUS_CALLBACK_PATH}?pkey={pkey}"


# Twilio's MessageStatus values that are interaction events. The others (queued, accepted,
# scheduled, sending, canceled, read, receiving, received) are steps or inbound states: not
# recorded.
RECORDED_STATUSES: dict[str, Interaction] = {
    "sent": Interaction.SENT,
    "delivered": Interaction.DELIVERED,
    "undelivered": Interaction.UNDELIVERED,
    "failed": Interaction.FAILED,
}


def receipt_entry(
    pkey: str, event_id: str, params: dict[str, str], at: datetime
) -> LogEntry | None:
    """The log entry of a status callback's parameters, or None when it is not recorded."""
    kind = RECORDED_STATUSES.get(params.get("MessageStatus", ""))
    if kind is None:
        return None
    detail: dict[str, Any] = {
        "provider": "twilio",
        "MessageSid": params.get("MessageSid"),
        "MessageStatus": params.get("MessageStatus"),
    }
    error_code = params.get("ErrorCode")
    if error_code:
        detail["ErrorCode"] = error_code
    return LogEntry(pkey, event_id, kind, at, detail)
