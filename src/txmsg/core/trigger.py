"""A trigger call's body: checked against the event configuration before it is accepted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator

from txmsg.core.addresses import normalize_email
from txmsg.core.errors import FieldError, as_refused, invalid, invalid_many
from txmsg.core.event_config import PayloadField, ctx_schema
from txmsg.core.phones import normalize_phone
from txmsg.core.timeutil import parse_iso8601
from txmsg.core.validation import check_storable

TRIGGER_FIELDS = {"email", "mobilePhone", "ctx", "scheduled", "expiration"}


@dataclass(slots=True)  # not frozen: one a trigger, see NewEvent
class TriggerRequest:
    email: str | None
    ctx: dict[str, Any]
    scheduled: datetime | None
    expiration: datetime
    mobile_phone: str | None = None


# Python types that certainly satisfy each JSON schema type (bool is not a JSON number).
_SURELY = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class CtxValidator:
    """Compiled once per event configuration; validates every trigger's `ctx`.

    jsonschema is the authority. A plain check that only ever says "valid" for data jsonschema
    also finds valid answers the common case without walking the schema on every trigger.
    """

    __slots__ = ("_checks", "_validator")

    def __init__(self, fields: list[PayloadField]) -> None:
        self._validator = Draft202012Validator(ctx_schema(fields))
        self._checks = [
            (f.name, _SURELY[f.type], f.required, f.type in ("number", "integer")) for f in fields
        ]

    def _surely_valid(self, ctx: dict[str, Any]) -> bool:
        for name, types, required, numeric in self._checks:
            if name not in ctx:
                if required:
                    return False
                continue
            value = ctx[name]
            if not isinstance(value, types) or (numeric and isinstance(value, bool)):
                return False
        return True

    def errors(self, ctx: dict[str, Any]) -> list[FieldError]:
        if self._surely_valid(ctx):
            return []
        found: list[FieldError] = []
        for err in self._validator.iter_errors(ctx):
            if err.validator == "required":
                missing = err.message.split("'")[1] if "'" in err.message else "?"
                found.append(FieldError(f"ctx.{missing}", "is required"))
            else:
                path = ".".join(str(p) for p in err.absolute_path)
                expected = err.schema.get("type") if isinstance(err.schema, dict) else None
                detail = f"must be of type {expected}" if expected else err.message
                found.append(FieldError(f"ctx.{path}" if path else "ctx", detail))
        found.sort(key=lambda e: e.field)
        return found

    def check(self, ctx: dict[str, Any]) -> None:
        """The 422 naming each field of `ctx` the event's declared fields refuse: the spec
        allows any object, what exists refuses it (openapi.yaml's rule for 400 and 422)."""
        errors = self.errors(ctx)
        if errors:
            raise as_refused(invalid_many(errors))


def parse_trigger(
    body: Any,
    validator: CtxValidator,
    *,
    now: datetime,
    default_expiration: timedelta,
    email_required: bool,
    phone_required: bool = False,
) -> TriggerRequest:
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    for key in body:
        if key not in TRIGGER_FIELDS:
            raise invalid(
                key, "unknown field (expected: email, mobilePhone, ctx, scheduled, expiration)"
            )
    email = _address(body, "email", normalize_email, required=email_required)
    # Parsed only when given (SMS events): phonenumbers is slow next to the rest of this path.
    mobile_phone = _address(body, "mobilePhone", normalize_phone, required=phone_required)
    ctx = _ctx(body)
    scheduled = body.get("scheduled")
    scheduled_at = parse_iso8601(scheduled, "scheduled") if scheduled is not None else None
    expiration = body.get("expiration")
    if expiration is not None:
        expires_at = parse_iso8601(expiration, "expiration")
    else:
        expires_at = max(now, scheduled_at or now) + default_expiration
    if scheduled_at is not None and expires_at <= scheduled_at:
        raise invalid("expiration", "must be later than scheduled")
    validator.check(ctx)  # last: a 422 only for a body the spec allows (else its 400)
    return TriggerRequest(
        email=email,
        ctx=ctx,
        scheduled=scheduled_at,
        expiration=expires_at,
        mobile_phone=mobile_phone,
    )


def _address(
    body: dict[str, Any],
    key: str,
    normalize: Callable[[object, str], str],
    *,
    required: bool,
) -> str | None:
    """The normalized address under `key`, None when left out (a 400 if it is required)."""
    raw = body.get(key)
    if raw is None:
        if required:
            raise invalid(key, "is required")
        return None
    return normalize(raw, key)


def _ctx(body: dict[str, Any]) -> dict[str, Any]:
    """The `ctx` object (absent or null: empty), storable (the event's fields check it last)."""
    ctx = body.get("ctx", {})
    if ctx is None:
        ctx = {}
    if not isinstance(ctx, dict):
        raise invalid("ctx", "must be a JSON object")
    check_storable(ctx, "ctx")
    return ctx
