"""The sample trigger call a publish answers with (`api_preview`): the address a trigger of
the event needs, and no other."""

from __future__ import annotations

from txmsg.core.event_config import PayloadField, api_preview

CUSTOMER = [PayloadField("customer", "string", True)]


def _body(channel: str, target: str, reconciliation: dict[str, str] | None = None) -> object:
    preview = api_preview("http://h", "EVTx", CUSTOMER, channel, target, reconciliation)
    return preview["body"]


def test_an_event_based_event_shows_the_address_its_channel_sends_to() -> None:
    ctx = {"customer": "sample customer"}
    assert _body("email", "event") == {"email": "recipient@example.com", "ctx": ctx}
    assert _body("sms", "event") == {"mobilePhone": "+14155552671", "ctx": ctx}


def test_a_profile_based_event_shows_only_the_address_it_is_reconciled_by() -> None:
    ctx = {"customer": "sample customer"}
    by_ctx = {"from": "ctx.customer", "to": "profile_id"}
    assert _body("email", "profile", by_ctx) == {"ctx": ctx}
    assert _body("sms", "profile", by_ctx) == {"ctx": ctx}
    # The default reconciliation reads the trigger's email.
    assert _body("sms", "profile") == {"email": "recipient@example.com", "ctx": ctx}
    by_phone = {"from": "mobilePhone", "to": "mobilePhone"}
    assert _body("email", "profile", by_phone) == {"mobilePhone": "+14155552671", "ctx": ctx}
