"""A batch trigger's body: the envelope whole, each item on its own, fields named from the root."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from txmsg.core.batch import MAX_BATCH_EVENTS, parse_batch
from txmsg.core.errors import DomainError
from txmsg.core.event_config import PayloadField
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator, TriggerRequest, parse_trigger

_VALIDATOR = CtxValidator([PayloadField("firstName", "string", True)])


def parse_one(item: Any) -> TriggerRequest:
    return parse_trigger(
        item,
        _VALIDATOR,
        now=utcnow(),
        default_expiration=timedelta(days=1),
        email_required=True,
    )


def test_items_are_parsed_alone_in_order() -> None:
    good = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    results = parse_batch({"events": [good, {"ctx": {}}, 3, good]}, parse_one)
    assert [type(r).__name__ for r in results] == [
        "TriggerRequest",
        "DomainError",
        "DomainError",
        "TriggerRequest",
    ]
    missing, not_object = results[1], results[2]
    assert isinstance(missing, DomainError) and isinstance(not_object, DomainError)
    assert [e.field for e in missing.errors] == ["events[1].email"]
    assert missing.detail == "events[1].email: is required"
    assert [e.as_dict() for e in not_object.errors] == [
        {"field": "events[2]", "pointer": "/events/2", "detail": "must be a JSON object"}
    ]


def test_a_ctx_error_points_into_its_item() -> None:
    item = {"email": "a@example.org", "ctx": {"firstName": 1}}
    [result] = parse_batch({"events": [item]}, parse_one)
    assert isinstance(result, DomainError)
    assert [e.field for e in result.errors] == ["events[0].ctx.firstName"]
    assert [e.as_dict()["pointer"] for e in result.errors] == ["/events/0/ctx/firstName"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({}, "events"),
        ({"events": None}, "events"),
        ({"events": {}}, "events"),
        ({"events": []}, "events"),
        ({"events": [{}] * (MAX_BATCH_EVENTS + 1)}, "events"),
        ({"events": [{}], "more": 1}, "more"),
    ],
)
def test_a_wrong_envelope_refuses_the_batch(body: Any, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_batch(body, parse_one)
    assert [e.field for e in caught.value.errors] == [field]


def test_a_full_batch_is_taken() -> None:
    good = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    results = parse_batch({"events": [good] * MAX_BATCH_EVENTS}, parse_one)
    assert len(results) == MAX_BATCH_EVENTS
    assert all(isinstance(r, TriggerRequest) for r in results)
