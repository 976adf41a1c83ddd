"""SMS provider failover over HTTP: two fake Twilio accounts, the primary down, answering
500 or stalled, then back; nothing lost, nothing sent twice, the answers name the provider,
and each account's receipts verify with its own token."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from helpers import (
    assert_problem,
    create_event,
    delivery_log,
    delivery_log_answer,
    forbid_server_errors,
    free_port,
    trigger,
    wait_status,
)
from txmsg.testing import FakeTwilio

BREAKER = {"failures": 2, "cool_down": 1.0}
PRIMARY_FROM, FALLBACK_FROM = "+14155550100", "+14155550101"


def _twilio(account_sid: str, token: str, base_url: str, sender: str, callbacks: str) -> dict:
    return {
        "account_sid": account_sid,
        "auth_token": token,
        "from_number": sender,
        "status_callback_base_url": callbacks,
        "api_base_url": base_url,
        "timeout": 1,
    }


async def _event(server: Any, primary: dict[str, Any], fallback: FakeTwilio) -> str:
    admin = server.admin
    body = {
        "name": "sms",
        "channel": "sms",
        "twilio": primary,
        "fallbacks": [
            _twilio(
                fallback.account_sid,
                fallback.auth_token,
                fallback.base_url,
                FALLBACK_FROM,
                server.base_url,
            )
        ],
        "breaker": BREAKER,
        "message_export": True,
    }
    r = await admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["fallbacks"][0]["auth_token_set"] is True
    assert "auth_token" not in view["fallbacks"][0] and fallback.auth_token not in r.text
    assert view["breaker"] == BREAKER
    created = await create_event(
        admin,
        "orderShipped",
        fields=[{"name": "firstName", "type": "string", "required": True}],
        channel="sms",
        channel_config="sms",
    )
    event_id: str = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
    r = await admin.put(
        f"/api/v1/messages/{event_id}/draft", json={"body": "Hi {{ ctx.firstName }}"}
    )
    assert r.status_code == 200, r.text
    assert (await admin.post(f"/api/v1/messages/{event_id}/publish")).status_code == 201
    return event_id


async def _send(admin: httpx.AsyncClient, event_id: str, n: int, first: int) -> list[dict]:
    """`n` SMS one after the other (each sent before the next: one half-open probe each)."""
    done = []
    for i in range(n):
        payload = {"mobilePhone": f"+1415555{first + i:04d}", "ctx": {"firstName": "A"}}
        accepted = await trigger(admin, event_id, payload)
        done.append(await wait_status(admin, accepted["href"], "processed", timeout=15))
    return done


def _name(twilio: FakeTwilio, sender: str) -> str:
    return f"{twilio.account_sid}/{sender}"


def _recipients(*twilios: FakeTwilio) -> list[str]:
    return [m.to for t in twilios for m in t.messages]


async def test_down_then_back_and_receipts_of_both_accounts(server, fake_twilio) -> None:
    admin = forbid_server_errors(server.admin)
    fallback: FakeTwilio = fake_twilio
    sid, token, port = "AC" + secrets.token_hex(16), secrets.token_hex(16), free_port()
    down = _twilio(sid, token, f"http://127.0.0.1:{port}", PRIMARY_FROM, server.base_url)
    event_id = await _event(server, down, fallback)  # nothing listens on `port` yet

    loop = asyncio.get_running_loop()
    start = loop.time()
    done = await _send(admin, event_id, 4, 0)
    assert loop.time() - start < 10  # no retry back-off: straight to the fallback
    assert {d["provider"] for d in done} == {_name(fallback, FALLBACK_FROM)}
    assert sorted(_recipients(fallback)) == [f"+1415555{i:04d}" for i in range(4)]
    log = await delivery_log_answer(admin, event_id, done[0]["PKey"])
    sent = [e for e in log["items"] if e["kind"] == "sent"]
    assert sent[0]["detail"] == {"provider": _name(fallback, FALLBACK_FROM)}
    # The export record names the number that sent, the fallback's.
    r = await admin.get("/api/v1/message-export/records")
    senders = {tuple(i["sender"]["numbers"]) for i in r.json()["items"]}
    assert senders == {(FALLBACK_FROM,)}, r.text

    async with FakeTwilio(account_sid=sid, auth_token=token, port=port) as primary:  # back
        await asyncio.sleep(BREAKER["cool_down"] + 0.2)
        back = await _send(admin, event_id, 3, 10)
        assert [d["provider"] for d in back] == [_name(primary, PRIMARY_FROM)] * 3
        assert len(primary.messages) == 3 and len(fallback.messages) == 4
        recipients = _recipients(primary, fallback)
        assert len(set(recipients)) == len(recipients) == 7  # nothing sent twice

        # Receipts: each account's callback verifies with its own token; a forgery does not.
        for twilio in (fallback, primary):
            sms = twilio.messages[0]
            assert await twilio.send_status(sms, "delivered") == 204
        forged = primary.messages[1]
        assert await primary.send_status(forged, "delivered", signature="Zm9yZ2Vk") == 403
        params = {**fallback.callback_params(fallback.messages[1], "delivered")}
        params["AccountSid"] = primary.account_sid  # another account of the configuration
        async with httpx.AsyncClient(timeout=10) as client:
            url = fallback.messages[1].status_callback
            assert url is not None
            r = await client.post(
                url, data=params, headers={"X-Twilio-Signature": fallback.sign(url, params)}
            )
        assert_problem(r, 403)  # signed by the fallback's token, but naming the primary
        kinds = [[e["kind"] for e in await delivery_log(admin, d["href"])] for d in done + back]
        assert sum("delivered" in k for k in kinds) == 2


async def test_500_and_stall_fail_over_but_21211_does_not(server, fake_twilio) -> None:
    admin = forbid_server_errors(server.admin)
    fallback: FakeTwilio = fake_twilio
    async with FakeTwilio() as primary:
        config = _twilio(
            primary.account_sid,
            primary.auth_token,
            primary.base_url,
            PRIMARY_FROM,
            server.base_url,
        )
        event_id = await _event(server, config, fallback)
        primary.fail_always(500)
        done = await _send(admin, event_id, 3, 0)
        assert {d["provider"] for d in done} == {_name(fallback, FALLBACK_FROM)}
        assert primary.messages == [] and len(fallback.messages) == 3
        assert primary.requests == BREAKER["failures"]  # then its breaker opened

        primary.reset_failures()
        primary.fail_always(503, delay=5.0)  # stalled: answers after the 1 s time-out
        await asyncio.sleep(BREAKER["cool_down"] + 0.2)
        done = await _send(admin, event_id, 2, 10)
        assert {d["provider"] for d in done} == {_name(fallback, FALLBACK_FROM)}

        primary.reset_failures()
        await asyncio.sleep(BREAKER["cool_down"] + 0.2)
        done = await _send(admin, event_id, 1, 20)
        assert done[0]["provider"] == _name(primary, PRIMARY_FROM)

        primary.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
        refused = await trigger(
            admin, event_id, {"mobilePhone": "+14155550199", "ctx": {"firstName": "G"}}
        )
        final = await wait_status(admin, refused["href"], "deliveryFailed")
        assert "21211" in final["reason"]
        assert len(fallback.messages) == 5  # a refused number is not the provider's fault
        recipients = _recipients(primary, fallback)
        assert len(set(recipients)) == len(recipients) == 6


async def test_fallback_tokens_are_write_only_and_kept(server, fake_twilio) -> None:
    admin = forbid_server_errors(server.admin)
    other = "AC" + secrets.token_hex(16)
    fallback = _twilio(other, "fallback-token", "http://127.0.0.1:9", FALLBACK_FROM, "http://x")
    primary = _twilio(fake_twilio.account_sid, "t", fake_twilio.base_url, PRIMARY_FROM, "http://x")
    body = {"name": "sms", "channel": "sms", "twilio": primary, "fallbacks": [fallback]}
    r = await admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    assert "fallback-token" not in r.text
    # Left out: the stored token is kept; another account without a token is refused.
    kept = {k: v for k, v in fallback.items() if k != "auth_token"}
    r = await admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [kept]})
    assert r.status_code == 200 and r.json()["fallbacks"][0]["auth_token_set"] is True
    moved = {**kept, "account_sid": "AC" + secrets.token_hex(16)}
    r = await admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [moved]})
    assert_problem(r, 400, "fallbacks[0].auth_token")
    r = await admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [fallback] * 5})
    assert_problem(r, 400, "fallbacks")
    bad = {**fallback, "from_number": "nope!"}
    r = await admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": [bad]})
    assert_problem(r, 400, "fallbacks[0].from_number")
    r = await admin.patch("/api/v1/channel-configs/sms", json={"breaker": {"failures": 0}})
    assert_problem(r, 400, "breaker.failures")
    r = await admin.patch("/api/v1/channel-configs/sms", json={"fallbacks": None})
    assert r.status_code == 200 and r.json()["fallbacks"] == []
