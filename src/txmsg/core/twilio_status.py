"""Twilio status callbacks as delivery-log entries (interaction events)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.errors import FieldError, invalid_many

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


_PKEY = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}\Z")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}\Z")
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}\Z")
_ERROR_CODE = re.compile(r"^[0-9]{1,10}\Z")


@dataclass(frozen=True, slots=True)
class CallbackIds:
    """The ids of a status callback, checked: the event (PKey), the account, the message."""

    pkey: str
    account_sid: str
    message_sid: str


def check_callback(pkey: str | None, params: dict[str, str]) -> CallbackIds:
    """The callback's ids, or a 400 naming each malformed one (nothing is looked up or written
    for such a callback). The PKey comes from the callback URL that txmsg gave Twilio."""
    errors: list[FieldError] = []

    def check(name: str, value: str | None, pattern: re.Pattern[str], what: str) -> None:
        if value is None or not pattern.fullmatch(value):
            # The PKey is a query parameter: no pointer into the (form) body.
            errors.append(FieldError(name, f"must be {what}", in_header=name == "pkey"))

    check("pkey", pkey, _PKEY, "the PKey of the callback URL txmsg gave Twilio (26 characters)")
    check("AccountSid", params.get("AccountSid"), _ACCOUNT_SID, "a Twilio account SID (AC...)")
    check("MessageSid", params.get("MessageSid"), _MESSAGE_SID, "a Twilio message SID (SM...)")
    error_code = params.get("ErrorCode")
    if error_code:  # absent or empty when the message had no error
        check("ErrorCode", error_code, _ERROR_CODE, "a Twilio error code (up to 10 digits)")
    if errors:
        raise invalid_many(errors)
    return CallbackIds(pkey or "", params["AccountSid"], params["MessageSid"])


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
