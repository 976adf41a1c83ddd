"""Per-key rate limits (429 with the IETF draft's headers, shared by two app instances on one
database), wrong-key limits per client, and key rotation with a grace period."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import RunningServer, Server
from helpers import assert_problem, create_key, live_event
from txmsg.core.rate_limit import KeyLimit
from txmsg.store.db import Database


def person(i: int) -> dict[str, Any]:
    return {"email": f"user{i}@example.org", "ctx": {"firstName": f"U{i}"}}


async def keyed(admin: httpx.AsyncClient, role: str, rate_limit: dict[str, int] | None) -> str:
    r = await admin.post(
        "/api/v1/keys", json={"role": role, "label": "limited", "rate_limit": rate_limit}
    )
    assert r.status_code == 201, r.text
    assert r.json()["rate_limit"] == rate_limit
    return str(r.json()["key"])


async def event(admin: httpx.AsyncClient, smtp: Any) -> str:
    """A published event (its mail goes to the fake SMTP server)."""
    return await live_event(admin, smtp)


def assert_limited(r: httpx.Response) -> None:
    assert_problem(r, 429)
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-policy"].startswith('"bucket";q=')
    assert r.headers["ratelimit"].startswith('"bucket";r=')


class Clock:
    """The key limiter's clock, held still at the start of a window of every bucket here
    (their lengths divide 120 s) and moved on by the test, instead of waiting for windows."""

    def __init__(self) -> None:
        self.now = (math.floor(time.time() / 120) + 1) * 120.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hold_clock(*servers: Server) -> Clock:
    """One clock for the limiters of these app instances (as if on one host's clock)."""
    clock = Clock()
    for s in servers:
        s.app.state.txmsg.keys.limiter.clock = clock
    return clock


async def test_a_key_over_its_limit_gets_429_with_headers(server, smtp) -> None:
    admin = server.admin
    event_id = await event(admin, smtp)
    clock = hold_clock(server)
    website = server.client(await keyed(admin, "trigger", {"per_second": 1, "burst": 3}))
    for i in range(3):
        r = await website.post(f"/rest/mc/{event_id}", json=person(i))
        assert r.status_code == 201, r.text
    r = await website.post(f"/rest/mc/{event_id}", json=person(3))
    assert_limited(r)
    assert r.headers["ratelimit-policy"] == '"bucket";q=3;w=3'
    # Other keys are not held up; the bucket refills after Retry-After.
    other = server.client(await create_key(admin, "trigger"))
    assert (await other.post(f"/rest/mc/{event_id}", json=person(4))).status_code == 201
    assert r.headers["retry-after"] == "3"  # the window (3 s) has just begun
    clock.advance(int(r.headers["retry-after"]) - 0.5)
    assert_limited(await website.post(f"/rest/mc/{event_id}", json=person(5)))
    clock.advance(0.5)
    assert (await website.post(f"/rest/mc/{event_id}", json=person(5))).status_code == 201


async def test_a_batch_counts_its_items(server, smtp) -> None:
    admin = server.admin
    event_id = await event(admin, smtp)
    hold_clock(server)
    website = server.client(await keyed(admin, "trigger", {"per_second": 1, "burst": 5}))
    r = await website.post(
        f"/rest/mc/{event_id}/batch", json={"events": [person(i) for i in range(4)]}
    )
    assert r.status_code == 201, r.text
    r = await website.post(
        f"/rest/mc/{event_id}/batch", json={"events": [person(i) for i in range(2)]}
    )
    assert_limited(r)
    r = await website.post(f"/rest/mc/{event_id}/batch", json={"events": [person(9)]})
    assert r.status_code == 201, r.text  # the one token left
    # More than the burst could never pass: no 429 to retry in vain, a 422 naming `events`.
    r = await website.post(
        f"/rest/mc/{event_id}/batch", json={"events": [person(i) for i in range(6)]}
    )
    problem = assert_problem(r, 422, "events")
    assert "burst of 5" in problem["detail"] and "retry-after" not in r.headers


@pytest.mark.server_settings(trigger_rate_limit=KeyLimit(1, 2))
async def test_trigger_keys_have_the_installation_default(server, smtp) -> None:
    admin = server.admin
    event_id = await event(admin, smtp)
    hold_clock(server)
    website = server.client(await create_key(admin, "trigger"))
    codes = [
        (await website.post(f"/rest/mc/{event_id}", json=person(i))).status_code for i in range(3)
    ]
    assert codes == [201, 201, 429]
    # A key's own limit replaces the default (PATCH), and admin keys have none unless set.
    keys = (await admin.get("/api/v1/keys")).json()["items"]
    key_id = next(k["id"] for k in keys if k["role"] == "trigger")
    r = await admin.patch(f"/api/v1/keys/{key_id}", json={"rate_limit": {"per_second": 100}})
    assert r.status_code == 200 and r.json()["rate_limit"] == {"per_second": 100, "burst": 100}
    assert (await website.post(f"/rest/mc/{event_id}", json=person(9))).status_code == 201
    for bad, field in [
        ({"rate_limit": {"burst": 5}}, "rate_limit.per_second"),
        ({"rate_limit": {"per_second": 0}}, "rate_limit.per_second"),
        ({"rate_limit": {"per_second": 5, "burst": 10**7}}, "rate_limit.burst"),
        ({}, "rate_limit"),
    ]:
        assert_problem(await admin.patch(f"/api/v1/keys/{key_id}", json=bad), 400, field)


async def test_two_app_instances_share_a_key_bucket(server, smtp) -> None:
    """Two processes' worth of app on one database: the key's bucket holds across both."""
    admin = server.admin
    event_id = await event(admin, smtp)
    key = await keyed(admin, "trigger", {"per_second": 1, "burst": 8})
    async with RunningServer(server.settings) as second:
        clients = [server.client(key), second.client(key)]
        hold_clock(server, second)
        codes = [
            (await clients[i % 2].post(f"/rest/mc/{event_id}", json=person(i))).status_code
            for i in range(16)
        ]
    assert codes.count(201) == 8 and codes.count(429) == 8, codes
    assert codes[:8] == [201] * 8  # each instance spent from the same bucket


@pytest.mark.server_settings(auth_failure_rate_limit=KeyLimit(1, 4))
async def test_wrong_key_requests_from_one_client_are_limited(server, smtp) -> None:
    hold_clock(server)
    made = await server.admin.post("/api/v1/keys", json={"role": "marketer", "label": "used"})
    used, used_id = made.json()["key"], made.json()["id"]
    unseen = await create_key(server.admin, "marketer")
    assert (await server.client(used).get("/api/v1/event-configs")).status_code == 200
    intruder = server.client("txm_0123456789abcdef_guess")
    codes = [(await intruder.get("/api/v1/keys")).status_code for _ in range(6)]
    assert codes == [401] * 4 + [429] * 2
    assert_limited(await intruder.post("/rest/mc/anything", json=person(0)))
    # A known key from the same address still gets in.
    assert (await server.admin.get("/api/v1/keys")).status_code == 200
    # So does one valid here lately, once it is no longer cached (it is looked up again);
    # a valid key never seen from here waits for the address's limit like a wrong one.
    keys = server.app.state.txmsg.keys
    assert (await server.client(used).get("/api/v1/event-configs")).status_code == 200
    keys.forget("any")  # the cache is emptied (as after its 5 s)
    assert (await server.client(used).get("/api/v1/event-configs")).status_code == 200
    assert_limited(await server.client(unseen).get("/api/v1/event-configs"))
    # A key valid lately and revoked since is refused, not let through.
    r = await server.admin.delete(f"/api/v1/keys/{used_id}")
    assert r.status_code == 204, r.text
    assert (await server.client(used).get("/api/v1/event-configs")).status_code in (401, 429)


async def test_rotation_keeps_the_old_secret_for_its_grace(server, smtp) -> None:
    admin = server.admin
    r = await admin.post("/api/v1/keys", json={"role": "marketer", "label": "console"})
    old_secret, key_id = r.json()["key"], r.json()["id"]
    # 3 s: on a busy machine the two requests after the rotation took longer than 1 s.
    r = await admin.post(f"/api/v1/keys/{key_id}/rotate", json={"grace_seconds": 3})
    assert r.status_code == 200, r.text
    rotated = r.json()
    new_secret = rotated["key"]
    assert rotated["id"] == key_id and rotated["role"] == "marketer"
    assert new_secret != old_secret and rotated["previous_secret_valid_until"] is not None
    old, new = server.client(old_secret), server.client(new_secret)
    assert (await old.get("/api/v1/templates")).status_code == 200
    assert (await new.get("/api/v1/templates")).status_code == 200
    until = datetime.fromisoformat(rotated["previous_secret_valid_until"])
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.05)
    assert_problem(await old.get("/api/v1/templates"), 401)
    assert (await new.get("/api/v1/templates")).status_code == 200

    # Secrets stay hashed at rest: neither appears in the database.
    def secrets_stored(conn: Any) -> str:
        return repr(conn.execute(sa.text("SELECT * FROM api_keys")).all())

    store = Database(server.settings.database_url)
    try:
        stored = await store.read(secrets_stored)
    finally:
        await store.dispose()
    assert old_secret not in stored and new_secret not in stored


async def test_rotation_defaults_and_bad_input(server, smtp) -> None:
    admin = server.admin
    r = await admin.post("/api/v1/keys", json={"role": "trigger", "label": "site"})
    key_id = r.json()["id"]
    r = await admin.post(f"/api/v1/keys/{key_id}/rotate")
    assert r.status_code == 200, r.text
    listed = next(k for k in (await admin.get("/api/v1/keys")).json()["items"] if k["id"] == key_id)
    assert listed["previous_secret_valid_until"] is not None  # a day from now, by default
    for bad in [{"grace_seconds": -1}, {"grace_seconds": 10**9}, {"grace_seconds": "1"}]:
        assert_problem(
            await admin.post(f"/api/v1/keys/{key_id}/rotate", json=bad), 400, "grace_seconds"
        )
    assert_problem(await admin.post("/api/v1/keys/0123456789abcdef/rotate"), 404)


@pytest.mark.server_settings(auth_failure_rate_limit=KeyLimit(1, 4))
async def test_wrong_keys_signing_in_to_the_console_are_limited_too(server, smtp) -> None:
    hold_clock(server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as browser:
        await browser.get("/console")
        csrf = {"X-CSRF-Token": browser.cookies["txmsg_csrf"]}
        codes = [
            (
                await browser.post(
                    "/console/session", json={"api_key": f"txm_{i:016x}_guess"}, headers=csrf
                )
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 4 + [429] * 2
        # The same address's bearer requests with a wrong key are over the limit as well.
        assert_limited(await server.client("txm_0123456789abcdef_guess").get("/api/v1/keys"))
