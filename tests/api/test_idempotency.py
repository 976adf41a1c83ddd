"""Idempotency-Key on the trigger API: one event and one email per key, whatever the retries."""

from __future__ import annotations

import asyncio

from helpers import assert_problem, create_event, live_event, trigger, wait_status
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
OTHER = {"email": "bob@example.org", "ctx": {"firstName": "Bob"}}


async def settled(admin, event_id: str) -> None:
    """Wait until everything queued before now was dispatched: a later sentinel event is done."""
    sentinel = await trigger(
        admin, event_id, {"email": "sentinel@example.org", "ctx": {"firstName": "S"}}
    )
    await wait_status(admin, sentinel["href"], "processed")
    await asyncio.sleep(0.1)  # a duplicate claimed alongside the sentinel would be sent by now


def recipients(smtp: FakeSMTPServer) -> list[str]:
    return sorted(r for m in smtp.messages for r in m.rcpt_tos if r != "sentinel@example.org")


async def test_same_key_same_body_replays_and_sends_once(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}"
    headers = {"Idempotency-Key": "order-1234-confirmation"}

    first = await admin.post(url, json=ADA, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    await wait_status(admin, first.json()["href"], "processed")

    # The same body with keys in another order is the same request.
    again = await admin.post(
        url, json={"ctx": {"firstName": "Ada"}, "email": "ada@example.org"}, headers=headers
    )
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # same PKey, same answer as the first time

    # Same key, another body: refused, and nothing is queued.
    other = await admin.post(
        url, json={"email": "bob@example.org", "ctx": {"firstName": "Bob"}}, headers=headers
    )
    problem = assert_problem(other, 422)
    assert "Idempotency-Key" in problem["detail"]
    # Same key and body on another event is another request too.
    other_event = await live_event_second(admin)
    r = await admin.post(f"/rest/mc/{other_event}", json=ADA, headers=headers)
    assert_problem(r, 422)

    await settled(admin, event_id)
    assert recipients(smtp) == ["ada@example.org"]
    # An invalid key is refused before anything happens.
    r = await admin.post(url, json=ADA, headers={"Idempotency-Key": "k" * 256})
    assert_problem(r, 400, "Idempotency-Key")


async def live_event_second(admin) -> str:
    created = await create_event(
        admin, "second", fields=[{"name": "firstName", "type": "string", "required": True}]
    )
    r = await admin.post(f"/api/v1/event-configs/{created['eventId']}/publish")
    assert r.status_code == 200, r.text
    return str(created["eventId"])


async def test_concurrent_requests(server, smtp: FakeSMTPServer) -> None:
    """20 retries with one key (one event), 5 other keys and 2 without (7 more), all at once."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}"
    same = [admin.post(url, json=ADA, headers={"Idempotency-Key": "storm"}) for _ in range(20)]
    others = [admin.post(url, json=OTHER, headers={"Idempotency-Key": f"k-{i}"}) for i in range(5)]
    unkeyed = [admin.post(url, json=OTHER) for _ in range(2)]  # no key: always a new event
    answers = await asyncio.gather(*same, *others, *unkeyed)
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    storm, rest = answers[:20], answers[20:]

    assert len({r.json()["PKey"] for r in storm}) == 1
    replayed = [r for r in storm if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 19
    assert not any("idempotent-replayed" in r.headers for r in rest)
    assert len({r.json()["PKey"] for r in rest}) == 7
    assert storm[0].json()["PKey"] not in {r.json()["PKey"] for r in rest}

    await asyncio.gather(
        *(wait_status(admin, r.json()["href"], "processed") for r in [storm[0], *rest])
    )
    await settled(admin, event_id)
    assert recipients(smtp) == ["ada@example.org"] + ["bob@example.org"] * 7
    sent = {m.message["Message-ID"][1:].split("@")[0] for m in smtp.messages}
    assert {r.json()["PKey"] for r in answers} <= sent
