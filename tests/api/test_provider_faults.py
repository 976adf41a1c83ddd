"""Provider faults, end to end through the engine (triggers over HTTP, the shipped fakes):
what is transient is retried until delivered, what is permanent fails with the provider's
reply, a provider's Retry-After is honoured, and nothing accepted is lost while a provider is
down. Retries are quick here (the test server's retry base is 0.05 s, cap 0.2 s) and the
providers' time-outs short (0.5 s), so each case takes a second or two."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from helpers import (
    SilentSMTPServer,
    live_event,
    live_sms_event,
    set_smtp,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer, FakeTwilio

SHORT = 0.5  # the providers' time-out in these channel configurations
PHONE = {"mobilePhone": "+14155552671", "ctx": {"firstName": "Ada", "orderId": "A-17"}}


async def _email_event(server: Any, smtp: FakeSMTPServer) -> str:
    event_id = await live_event(server.admin, smtp)
    await set_smtp(server.admin, smtp.host, smtp.port, timeout=SHORT)
    return event_id


@pytest.mark.parametrize(("code", "stage"), [(421, "MAIL"), (451, "DATA"), (452, "RCPT")])
async def test_smtp_4xx_is_retried_then_delivered(
    server: Any, smtp: FakeSMTPServer, code: int, stage: str
) -> None:
    event_id = await live_event(server.admin, smtp)
    smtp.fail_next(code, "try again later", count=2, stage=stage)
    accepted = await trigger(server.admin, event_id)
    await wait_status(server.admin, accepted["href"], "processed")
    assert smtp.rejected == 2 and len(smtp.messages) == 1


@pytest.mark.parametrize("code", [550, 554])
async def test_smtp_5xx_fails_with_the_reply(server: Any, smtp: FakeSMTPServer, code: int) -> None:
    event_id = await live_event(server.admin, smtp)
    smtp.fail_next(code, "5.1.1 mailbox unavailable")
    accepted = await trigger(server.admin, event_id)
    status = await wait_status(server.admin, accepted["href"], "deliveryFailed")
    assert status["reason"] == f"{code} 5.1.1 mailbox unavailable"
    assert smtp.messages == []


async def test_a_connection_dropped_mid_data_is_retried(server: Any, smtp: FakeSMTPServer) -> None:
    event_id = await _email_event(server, smtp)
    smtp.drop_next(2)
    accepted = await trigger(server.admin, event_id)
    await wait_status(server.admin, accepted["href"], "processed")
    assert smtp.dropped == 2 and len(smtp.messages) == 1


async def test_a_stalled_server_times_out_and_the_send_is_retried(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _email_event(server, smtp)
    smtp.delay = 5.0  # DATA's reply would come after the 0.5 s time-out
    accepted = await trigger(server.admin, event_id)
    await wait_status(server.admin, accepted["href"], "pending")  # retrying: timed out
    smtp.delay = 0.0
    await wait_status(server.admin, accepted["href"], "processed")
    # A greeting that never comes is a time-out too.
    async with SilentSMTPServer() as silent:
        await set_smtp(server.admin, silent.host, silent.port, timeout=SHORT)
        second = await trigger(server.admin, event_id)
        status = await wait_status(server.admin, second["href"], "pending", timeout=10)
        await asyncio.sleep(SHORT * 2)
        assert silent.connections >= 2  # retried, not stuck on the first connection
        await set_smtp(server.admin, smtp.host, smtp.port, timeout=SHORT)
    status = await wait_status(server.admin, second["href"], "processed")
    assert status["status"] == "processed"


async def test_a_server_down_for_a_while_loses_nothing_and_the_backlog_drains(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _email_event(server, smtp)
    await smtp.stop()  # connection refused from now on
    accepted = [await trigger(server.admin, event_id) for _ in range(20)]
    await asyncio.sleep(1.5)  # several retry rounds against a closed port
    assert smtp.messages == []
    await smtp.start()  # back, on the same port
    for event in accepted:
        await wait_status(server.admin, event["href"], "processed", timeout=20)
    await asyncio.sleep(0.3)
    assert len(smtp.messages) == 20  # each exactly once
    assert len({m.message["Subject"] for m in smtp.messages}) == 1


async def test_twilio_429_retry_after_is_honoured(server: Any, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_next(429, retry_after="2")
    began = time.monotonic()
    accepted = await trigger(server.admin, event_id, PHONE)
    status = await wait_status(server.admin, accepted["href"], "pending")
    assert "429" in status.get("reason", "429")
    await wait_status(server.admin, accepted["href"], "processed", timeout=15)
    # Without the header the retry would come after 0.05-0.2 s.
    assert time.monotonic() - began >= 2.0
    assert fake_twilio.requests == 2 and len(fake_twilio.messages) == 1


async def test_twilio_500_and_time_outs_are_retried(server: Any, fake_twilio: FakeTwilio) -> None:
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    r = await server.admin.patch("/api/v1/channel-configs/sms", json={"twilio": {"timeout": SHORT}})
    assert r.status_code == 200, r.text
    fake_twilio.fail_next(500)
    fake_twilio.fail_next(503, delay=8.0)  # answered long after the 0.5 s time-out
    began = time.monotonic()
    accepted = await trigger(server.admin, event_id, PHONE)
    await wait_status(server.admin, accepted["href"], "processed", timeout=15)
    assert fake_twilio.requests == 3 and len(fake_twilio.messages) == 1
    assert time.monotonic() - began < 7.0  # the stalled answer was not waited for
