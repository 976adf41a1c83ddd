"""SMTP relay failover over HTTP: two fake SMTP servers, the primary down, stalled or
answering 421, then back; nothing lost, nothing sent twice, the answers name the relay."""

from __future__ import annotations

import asyncio

from helpers import (
    SilentSMTPServer,
    assert_problem,
    create_channel,
    create_event,
    delivery_log_answer,
    forbid_server_errors,
    free_port,
    metrics_showing,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer

BREAKER = {"failures": 2, "cool_down": 1.0}


async def _event(admin, primary: tuple[str, int], fallback: FakeSMTPServer) -> str:
    relay = {"host": fallback.host, "port": fallback.port, "tls": "none", "timeout": 5}
    await create_channel(admin, fallback, fallbacks=[relay], breaker=BREAKER)
    # Down is refused at once and 421 is an answer: a 1 s time-out (the stall's, below) would
    # only add sends that time out on a busy machine and go to the fallback.
    await set_smtp(admin, primary[0], primary[1], timeout=5)
    created = await create_event(admin)
    event_id = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
    await publish_message(admin, event_id)
    return event_id


async def _send(admin, event_id: str, n: int, tag: str) -> list[dict]:
    accepted = [
        await trigger(
            admin, event_id, {"email": f"{tag}{i}@example.org", "ctx": {"firstName": "A"}}
        )
        for i in range(n)
    ]
    return [await wait_status(admin, a["href"], "processed", timeout=15) for a in accepted]


def _ids(*servers: FakeSMTPServer) -> list[str]:
    return [m.message["Message-ID"] for s in servers for m in s.messages]


async def test_down_then_back(server, smtp) -> None:
    admin = forbid_server_errors(server.admin)
    fallback: FakeSMTPServer = smtp
    port = free_port()  # nothing listens there yet: the primary is down
    event_id = await _event(admin, ("127.0.0.1", port), fallback)
    loop = asyncio.get_running_loop()
    start = loop.time()
    done = await _send(admin, event_id, 4, "down")
    assert loop.time() - start < 10  # no retry back-off: straight to the fallback
    assert {d["provider"] for d in done} == {f"{fallback.host}:{fallback.port}"}
    assert len(fallback.messages) == 4 and len(set(_ids(fallback))) == 4
    log = await delivery_log_answer(admin, event_id, done[0]["PKey"])
    sent = [e for e in log["items"] if e["kind"] == "sent"]
    assert sent[0]["detail"] == {"provider": f"{fallback.host}:{fallback.port}"}
    relay = f'provider="{fallback.host}:{fallback.port}"'
    await metrics_showing(admin, f'txmsg_provider_sends_total{{channel="email",{relay}}} 4.0')

    async with FakeSMTPServer(port=port) as primary:  # back
        await asyncio.sleep(BREAKER["cool_down"] + 0.2)
        # One send probes the rested relay (sends beside the probe go to the fallback), and its
        # success closes the breaker: the sends after it go to the primary.
        [probe] = await _send(admin, event_id, 1, "probe")
        assert probe["provider"] == f"127.0.0.1:{port}"
        done = await _send(admin, event_id, 3, "back")
        assert [d["provider"] for d in done] == [f"127.0.0.1:{port}"] * 3
        assert len(primary.messages) == 4 and len(fallback.messages) == 4
        assert len(set(_ids(primary, fallback))) == 8  # nothing sent twice


async def test_421_and_stall_fail_over_but_550_does_not(server, smtp) -> None:
    admin = forbid_server_errors(server.admin)
    fallback: FakeSMTPServer = smtp
    async with FakeSMTPServer() as primary:
        event_id = await _event(admin, (primary.host, primary.port), fallback)
        primary.fail_always(421, "4.3.2 going down", stage="MAIL")
        done = await _send(admin, event_id, 3, "busy")
        assert {d["provider"] for d in done} == {f"{fallback.host}:{fallback.port}"}
        assert primary.messages == [] and len(fallback.messages) == 3

        primary.reset_failures()
        await asyncio.sleep(BREAKER["cool_down"] + 0.2)
        done = await _send(admin, event_id, 1, "again")
        assert done[0]["provider"] == f"{primary.host}:{primary.port}"

        primary.fail_next(550, "5.1.1 no such user", stage="RCPT")
        refused = await trigger(
            admin, event_id, {"email": "gone@example.org", "ctx": {"firstName": "G"}}
        )
        final = await wait_status(admin, refused["href"], "deliveryFailed")
        assert "550" in final["reason"]
        assert len(fallback.messages) == 3  # a refusal of the address is not the relay's fault

    async with SilentSMTPServer() as stalled:
        r = await admin.patch(
            "/api/v1/channel-configs/mail",
            json={"smtp": {"host": stalled.host, "port": stalled.port, "timeout": 1}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["fallbacks"][0]["port"] == fallback.port
        done = await _send(admin, event_id, 3, "stall")
        assert {d["provider"] for d in done} == {f"{fallback.host}:{fallback.port}"}
        assert len(fallback.messages) == 6 and len(set(_ids(fallback))) == 6


async def test_a_relay_refusing_its_login_fails_over_and_fails_no_message(server, smtp) -> None:
    """A wrong (or rotated) password is the relay's fault, not the recipient's: the messages
    go through the fallback, and none ends deliveryFailed."""
    admin = forbid_server_errors(server.admin)
    fallback: FakeSMTPServer = smtp
    async with FakeSMTPServer(auth=("mailer", "right-password")) as primary:
        event_id = await _event(admin, (primary.host, primary.port), fallback)
        await set_smtp(
            admin, primary.host, primary.port, username="mailer", password="rotated-away"
        )
        done = await _send(admin, event_id, 3, "login")
        assert {d["provider"] for d in done} == {f"{fallback.host}:{fallback.port}"}
        assert primary.messages == [] and len(fallback.messages) == 3


async def test_a_stored_password_stays_with_its_relay(server) -> None:
    """Passwords are write-only, so a PATCH reordering the fallbacks cannot send them back:
    each stays with the host, port and username it was given for, never sent to another."""
    admin = forbid_server_errors(server.admin)
    async with (
        FakeSMTPServer(auth=("a-user", "a-pass")) as a,
        FakeSMTPServer(auth=("b-user", "b-pass")) as b,
    ):

        def relay(s: FakeSMTPServer, user: str, password: str | None = None) -> dict:
            out = {"host": s.host, "port": s.port, "tls": "none", "username": user, "timeout": 5}
            return out if password is None else {**out, "password": password}

        event_id = await _event(admin, ("127.0.0.1", free_port()), a)  # the primary is down
        r = await admin.patch(
            "/api/v1/channel-configs/mail",
            json={"fallbacks": [relay(a, "a-user", "a-pass"), relay(b, "b-user", "b-pass")]},
        )
        assert r.status_code == 200, r.text
        [done] = await _send(admin, event_id, 1, "first")
        assert done["provider"] == f"{a.host}:{a.port}"
        # B first now, passwords left out: each keeps its own.
        r = await admin.patch(
            "/api/v1/channel-configs/mail",
            json={"fallbacks": [relay(b, "b-user"), relay(a, "a-user")]},
        )
        assert r.status_code == 200, r.text
        assert [f["password_set"] for f in r.json()["fallbacks"]] == [True, True]
        [done] = await _send(admin, event_id, 1, "reordered")
        assert done["provider"] == f"{b.host}:{b.port}"  # B logged in with B's password
        # A relay or user with no stored password must be given one.
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"fallbacks": [relay(b, "someone-else")]}
        )
        assert_problem(r, 422, "fallbacks[0].password")
        # The primary's too.
        r = await admin.patch(
            "/api/v1/channel-configs/mail",
            json={
                "smtp": {"host": a.host, "port": a.port, "username": "a-user", "password": "a-pass"}
            },
        )
        assert r.status_code == 200, r.text
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"smtp": {"port": b.port, "username": "b-user"}}
        )
        assert_problem(r, 422, "smtp.password")
        r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"timeout": 7}})
        assert r.status_code == 200 and r.json()["smtp"]["password_set"] is True, r.text
        # A password given for an encrypted connection is not sent in clear once TLS is off.
        encrypted = {"host": a.host, "port": a.port, "tls": "starttls", "password": "a-pass"}
        r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": encrypted})
        assert r.status_code == 200, r.text
        in_clear = {"tls": "none", "port": a.port}
        r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": in_clear})
        assert "TLS" in assert_problem(r, 422, "smtp.password")["detail"]
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"smtp": {**in_clear, "password": "a-pass"}}
        )
        assert r.status_code == 200, r.text
