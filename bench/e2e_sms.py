"""End-to-end SMS rates into the fake Twilio against the raw twilio async client, same run.

The fake Twilio (`txmsg.testing.FakeTwilio`, uvicorn + Starlette on uvloop) runs in a process
of its own. Baseline: the official twilio client on its async HTTP client (one pooled aiohttp
session), 64 concurrent `messages.create_async` calls (the engine's default in-flight limit),
on uvloop, sending the same text. Engine: `txmsg serve` (one process, SQLite,
synchronous=FULL) with an SMS channel configuration pointed at the same fake. Two figures:

- delivery: events triggered over HTTP while the event is paused, then resumed; events sent
  (status `processed`) per second from the resume to the last send: claim, render, send
  through Twilio's client, record (with the message SID).
- trigger -> sent: wrk triggers events over HTTP while the engine sends them; events sent per
  second from the first trigger to the last send (HTTP acceptance shares the process).

Every accepted event must end `processed`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
import uvloop
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import ADMIN_KEY, engine_env, engine_rates, free_port, print_rates, process

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-auth-token"
TEXT = "Hello Ada, your order {{ event.PKey }} is on its way. Track it in the app."
TRIGGER_BODY = '{"mobilePhone": "+14155552671", "ctx": {"firstName": "Ada %d"}}'


def fake_twilio(port: int) -> list[str]:
    """The command serving the fake Twilio on `port` until terminated."""
    code = (
        "import asyncio, uvloop\n"
        "from txmsg.testing import FakeTwilio\n"
        "async def main():\n"
        f"    async with FakeTwilio({ACCOUNT_SID!r}, {AUTH_TOKEN!r}, port={port}):\n"
        "        await asyncio.Event().wait()\n"
        "uvloop.run(main())\n"
    )
    return [sys.executable, "-c", code]


async def _raw(base_url: str, count: int, concurrency: int) -> float:
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = base_url
    body = TEXT.replace("{{ event.PKey }}", "06H0M1NT4MJ2KGQZGDGV1JJENW")
    per = count // concurrency

    async def worker() -> None:
        for _ in range(per):
            await client.messages.create_async(to="+14155552671", from_="+14155550100", body=body)

    await worker()  # warm up: connections open, code paths hot
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await http.close()
    return per * concurrency / elapsed


def raw_twilio(base_url: str, count: int) -> float:
    return uvloop.run(_raw(base_url, count, 64))


def setup_sms_event(base: str, twilio_url: str) -> str:
    """SMS channel config, event config, published message; returns a trigger key."""
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    admin.post(
        "/api/v1/channel-configs",
        json={
            "name": "fake",
            "channel": "sms",
            "twilio": {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550100",
                "api_base_url": twilio_url,
            },
        },
    ).raise_for_status()
    admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "bench",
            "channel": "sms",
            "channel_config": "fake",
            "fields": [{"name": "firstName", "type": "string", "required": True}],
        },
    ).raise_for_status()
    admin.post("/api/v1/event-configs/EVTbench/publish").raise_for_status()
    admin.put("/api/v1/messages/EVTbench/draft", json={"body": TEXT}).raise_for_status()
    admin.post("/api/v1/messages/EVTbench/publish").raise_for_status()
    r = admin.post("/api/v1/keys", json={"role": "trigger", "label": "bench"})
    r.raise_for_status()
    return str(r.json()["key"])


def engine(twilio_url: str, seconds: int, *, backlog: bool) -> dict[str, float]:
    return engine_rates(
        lambda base: setup_sms_event(base, twilio_url), seconds, backlog=backlog, body=TRIGGER_BODY
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="how long wrk triggers events")
    parser.add_argument("--raw-count", type=int, default=10_000)
    args = parser.parse_args()
    twilio_port = free_port()
    twilio_url = f"http://127.0.0.1:{twilio_port}"
    with process(fake_twilio(twilio_port), env=engine_env(Path(".")), port=twilio_port):
        base = raw_twilio(twilio_url, args.raw_count)
        delivery = engine(twilio_url, args.seconds, backlog=True)
        live = engine(twilio_url, args.seconds, backlog=False)
    print_rates("raw twilio async client, 64 concurrent", base, "SMS", delivery, live)


if __name__ == "__main__":
    main()
