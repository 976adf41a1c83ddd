"""A trigger's body, checked in core before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.event_config import PayloadField
from txmsg.core.trigger import CtxValidator, TriggerRequest, parse_trigger

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VALIDATOR = CtxValidator(
    [PayloadField("name", "string", True), PayloadField("n", "integer", False)]
)


def _parse(body: Any, *, email: bool = True, phone: bool = False) -> TriggerRequest:
    return parse_trigger(
        body,
        VALIDATOR,
        now=NOW,
        default_expiration=timedelta(days=1),
        email_required=email,
        phone_required=phone,
    )


def _errors(body: Any, status: int = 400, **required: bool) -> list[tuple[str, str]]:
    with pytest.raises(DomainError) as raised:
        _parse(body, **required)
    assert raised.value.status == status
    return [(e.field, e.detail) for e in raised.value.errors]


def test_a_valid_body() -> None:
    got = _parse({"email": "Ann@EXAMPLE.org", "ctx": {"name": "Ann"}})
    assert (got.email, got.mobile_phone, got.ctx) == ("Ann@example.org", None, {"name": "Ann"})
    assert (got.scheduled, got.expiration) == (None, NOW + timedelta(days=1))
    sms = _parse({"mobilePhone": "+1 (415) 555-2671", "ctx": {"name": "x"}}, email=False)
    assert (sms.email, sms.mobile_phone) == (None, "+14155552671")


def test_the_addresses_an_event_requires() -> None:
    assert _errors({"ctx": {"name": "x"}}) == [("email", "is required")]
    assert _errors({"ctx": {"name": "x"}}, email=False, phone=True) == [
        ("mobilePhone", "is required")
    ]
    assert _errors({"email": "a@example.org", "mobilePhone": "12", "ctx": {"name": "x"}})[0][0] == (
        "mobilePhone"
    )


def test_ctx() -> None:
    # Not an object: invalid by the spec (400). Refused by the event's fields: 422.
    assert _errors({"email": "a@example.org", "ctx": []}) == [("ctx", "must be a JSON object")]
    assert _errors({"email": "a@example.org"}, 422) == [("ctx.name", "is required")]
    assert _errors({"email": "a@example.org", "ctx": None}, 422) == [("ctx.name", "is required")]
    assert _errors({"email": "a@example.org", "ctx": {"n": "1"}}, 422) == [
        ("ctx.n", "must be of type integer"),
        ("ctx.name", "is required"),
    ]


def test_a_ctx_the_fields_refuse_is_told_only_of_a_body_the_spec_allows() -> None:
    refused = {"email": "a@example.org", "ctx": {"n": "1", "name": "x"}}
    assert _errors({**refused, "scheduled": "not a date"})[0][0] == "scheduled"
    assert _errors({**refused, "expiration": 5})[0][0] == "expiration"
    assert _errors(refused, 422) == [("ctx.n", "must be of type integer")]


def test_the_body_shape_comes_first() -> None:
    assert _errors([]) == [("body", "must be a JSON object")]
    unknown = "unknown field (expected: email, mobilePhone, ctx, scheduled, expiration)"
    assert _errors({"mail": "a@example.org"}) == [("mail", unknown)]


def test_schedule_and_expiration() -> None:
    body = {"email": "a@example.org", "ctx": {"name": "x"}, "scheduled": "2026-03-05T00:00:00Z"}
    got = _parse(body)
    assert got.scheduled == datetime(2026, 3, 5, tzinfo=UTC)
    assert got.expiration == datetime(2026, 3, 6, tzinfo=UTC)  # counted from the schedule
    early = {**body, "expiration": "2026-03-04T00:00:00Z"}
    assert _errors(early) == [("expiration", "must be later than scheduled")]


def test_phone_errors_are_in_our_words() -> None:
    cases = {
        "4155552671": "must be a phone number in international format: + and the country code, "
        "e.g. +14155552671",
        "+1 call me": "is not a phone number, e.g. +14155552671",
        "+1234567890123456789": "is too long for a phone number",
        "+1 415 555": "is not a valid phone number (unknown range for its country)",
    }
    for number, detail in cases.items():
        body = {"mobilePhone": number, "ctx": {"name": "x"}}
        assert _errors(body, email=False)[0] == ("mobilePhone", detail), number
