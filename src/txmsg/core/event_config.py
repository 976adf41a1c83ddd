"""Event configurations: their fields, the JSON schema a trigger's `ctx` must match, samples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.errors import invalid, refused
from txmsg.core.kinds import PRIORITIES, Channel, Priority, TargetType
from txmsg.core.reconciliation import Reconciliation
from txmsg.core.validation import (
    get_bool,
    get_choice,
    get_str,
    reject_unknown,
    require_object,
)

FIELD_TYPES = ("string", "number", "integer", "boolean", "array", "object")
MAX_EVENT_ID = 64
_EVENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\Z")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
CREATE_FIELDS = {
    "eventId",
    "label",
    "channel",
    "channel_config",
    "target",
    "fields",
    "template",
    "reconciliation",
    "tags",
    "webhook",
    "priority",
}
UPDATE_FIELDS = {
    "label",
    "channel_config",
    "fields",
    "template",
    "channel",
    "target",
    "eventId",
    "reconciliation",
    "tags",
    "webhook",
    "priority",
}


@dataclass(frozen=True, slots=True)
class PayloadField:
    name: str
    type: str
    required: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "required": self.required}


def normalize_event_id(value: object) -> str:
    """`cartAbandonment` -> `EVTcartAbandonment`; at most 64 characters in all."""
    if not isinstance(value, str) or not value:
        raise invalid("eventId", "is required and must be a string")
    if not _EVENT_ID.match(value):
        raise invalid(
            "eventId", "must start with a letter and hold only letters, digits and underscores"
        )
    event_id = value if value.startswith("EVT") else "EVT" + value
    if len(event_id) > MAX_EVENT_ID:
        raise invalid("eventId", f"must be at most {MAX_EVENT_ID} characters with its EVT prefix")
    return event_id


def parse_priority(body: dict[str, Any], *, required: bool = False) -> Priority:
    """The `priority` lane of `body`: `transactional` when left out (and not `required`)."""
    value = get_choice(
        body, "priority", PRIORITIES, required=required, default=Priority.TRANSACTIONAL
    )
    assert value is not None
    return Priority(value)


def parse_fields(value: object) -> list[PayloadField]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("fields", "must be an array")
    fields: list[PayloadField] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        prefix = f"fields[{i}]."
        item = require_object(item, f"fields[{i}]")
        reject_unknown(item, {"name", "type", "required"}, prefix)
        name = get_str(item, "name", prefix=prefix, required=True, max_length=64)
        assert name is not None
        if not _FIELD_NAME.match(name):
            raise invalid(prefix + "name", "must be an identifier (letters, digits, _)")
        if name in seen:
            # A 422: JSON Schema cannot say "unique by name" of an array of objects.
            raise refused(prefix + "name", f"duplicate field '{name}'")
        seen.add(name)
        ftype = get_choice(item, "type", FIELD_TYPES, prefix=prefix, required=True)
        assert ftype is not None
        required = get_bool(item, "required", prefix=prefix, default=False)
        fields.append(PayloadField(name, ftype, bool(required)))
    return fields


def ctx_schema(fields: list[PayloadField]) -> dict[str, Any]:
    """The JSON schema of a trigger's `ctx`. Extra keys are allowed, as Adobe allows them."""
    return {
        "type": "object",
        "properties": {f.name: {"type": f.type} for f in fields},
        "required": [f.name for f in fields if f.required],
    }


_SAMPLES: dict[str, Any] = {
    "number": 9.99,
    "integer": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def sample_ctx(fields: list[PayloadField]) -> dict[str, Any]:
    """Sample data built from the fields, used for the API preview and template checks."""
    return {f.name: _SAMPLES.get(f.type, f"sample {f.name}") for f in fields}


_SAMPLE_ADDRESSES = {"email": "recipient@example.com", "mobilePhone": "+14155552671"}


def api_preview(
    base_url: str,
    event_id: str,
    fields: list[PayloadField],
    channel: str = Channel.EMAIL,
    target: str = TargetType.EVENT,
    reconciliation: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A sample trigger call: the address an event-based event is sent to; for a profile-based
    one, only the address it is reconciled by, if it is one (a `ctx.<field>` is in `ctx`)."""
    url = f"{base_url.rstrip('/')}/rest/mc/{event_id}"
    if target == TargetType.PROFILE:
        address: str | None = Reconciliation.of(reconciliation).source
    else:
        address = "mobilePhone" if channel == Channel.SMS else "email"
    recipient = {address: _SAMPLE_ADDRESSES[address]} if address in _SAMPLE_ADDRESSES else {}
    body = {**recipient, "ctx": sample_ctx(fields)}
    return {
        "method": "POST",
        "url": url,
        "headers": {
            "Content-Type": "application/json",
            "Authorization": "Bearer <trigger key>",
        },
        "body": body,
    }
