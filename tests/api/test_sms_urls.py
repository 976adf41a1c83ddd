"""An SMS channel's Twilio URLs are ones its HTTP client can call: refused with a 400 naming
the field when not (a broken IPv6 literal was a 500; a bad IDNA label or port was accepted and
failed at every send)."""

from __future__ import annotations

import pytest

from helpers import assert_problem

BAD = [
    "http://[::1/y",
    "http://xn--/y",
    "http://127.0.0.1:70000/",
    "http://256.1.1.1/",
    "http://user:secret@127.0.0.1/",
    "http://127.0.0.1/\u007f",
    "https://api.twilio.com/?x=1",
]


@pytest.mark.parametrize("field", ["api_base_url", "status_callback_base_url"])
async def test_a_twilio_url_its_client_cannot_call_is_refused(server, fake_twilio, field) -> None:
    good = {
        "account_sid": fake_twilio.account_sid,
        "auth_token": fake_twilio.auth_token,
        "from_number": "+14155550100",
        "status_callback_base_url": server.base_url,
        "api_base_url": fake_twilio.base_url,
    }
    for url in BAD:
        body = {"name": "sms", "channel": "sms", "twilio": {**good, field: url}}
        r = await server.admin.post("/api/v1/channel-configs", json=body)
        assert r.status_code == 400, (url, r.status_code, r.text)
        assert_problem(r, 400, f"twilio.{field}")
    body = {"name": "sms", "channel": "sms", "twilio": good}
    assert (await server.admin.post("/api/v1/channel-configs", json=body)).status_code == 201


async def test_the_auth_token_goes_only_where_it_was_given_for(server, fake_twilio) -> None:
    """A write-only token is not sent to a new api_base_url without being given again: the
    one who moves it could read it off the requests."""
    twilio = {
        "account_sid": fake_twilio.account_sid,
        "auth_token": fake_twilio.auth_token,
        "from_number": "+14155550100",
        "status_callback_base_url": server.base_url,
        "api_base_url": fake_twilio.base_url,
    }
    body = {"name": "sms", "channel": "sms", "twilio": twilio}
    assert (await server.admin.post("/api/v1/channel-configs", json=body)).status_code == 201
    elsewhere = {"twilio": {"api_base_url": "http://127.0.0.1:9"}}
    r = await server.admin.patch("/api/v1/channel-configs/sms", json=elsewhere)
    assert_problem(r, 422, "twilio.auth_token")
    with_token = {"twilio": {**elsewhere["twilio"], "auth_token": "another"}}
    r = await server.admin.patch("/api/v1/channel-configs/sms", json=with_token)
    assert r.status_code == 200, r.text
    # A fallback keeps its stored token at its place only for the same account and API.
    fallback = {**twilio, "from_number": "+14155550101"}
    r = await server.admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [fallback]})
    assert r.status_code == 200, r.text
    moved = {k: v for k, v in fallback.items() if k != "auth_token"}
    r = await server.admin.patch(
        "/api/v1/channel-configs/sms",
        json={"fallbacks": [{**moved, "api_base_url": "http://127.0.0.1:9"}]},
    )
    assert_problem(r, 400, "fallbacks[0].auth_token")
    r = await server.admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [moved]})
    assert r.status_code == 200, r.text
