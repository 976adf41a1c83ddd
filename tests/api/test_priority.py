"""Priority lanes over HTTP: an event configuration is `transactional` (the default) or `bulk`,
its events are queued in its lane, and a bulk backlog does not hold a transactional send back."""

from __future__ import annotations

import pytest

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    delivery_log_answer,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer

EVENTS = "/api/v1/event-configs"
ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


async def publish(admin, event_id: str) -> None:
    r = await admin.post(f"{EVENTS}/{event_id}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, event_id)


async def test_configurations_are_transactional_unless_bulk(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    plain = await create_event(admin, "orderConfirmation")
    assert plain["priority"] == "transactional"
    bulk = await create_event(admin, "newsletter", priority="bulk")
    assert bulk["priority"] == "bulk"
    urgent = await create_event(admin, "passwordReset", priority="transactional")
    assert urgent["priority"] == "transactional"

    r = await admin.get(f"{EVENTS}/{bulk['eventId']}")
    assert r.status_code == 200 and r.json()["priority"] == "bulk"
    listed = (await admin.get(EVENTS)).json()["items"]
    assert {e["eventId"]: e["priority"] for e in listed} == {
        "EVTorderConfirmation": "transactional",
        "EVTnewsletter": "bulk",
        "EVTpasswordReset": "transactional",
    }


async def test_a_wrong_priority_is_a_problem_naming_the_field(server, smtp) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    base = {"eventId": "x", "channel": "email", "channel_config": "mail"}
    for wrong in ("urgent", "", 1, ["bulk"], "BULK"):
        r = await admin.post(EVENTS, json={**base, "priority": wrong})
        problem = assert_problem(r, 400, "priority")
        assert problem["errors"][0]["pointer"] == "/priority"
    assert (await admin.get(f"{EVENTS}/EVTx")).status_code == 404  # nothing was created

    await create_event(admin, "x")
    for wrong in ("urgent", None, 0):
        assert_problem(
            await admin.patch(f"{EVENTS}/EVTx", json={"priority": wrong}), 400, "priority"
        )
    assert (await admin.get(f"{EVENTS}/EVTx")).json()["priority"] == "transactional"


async def test_the_lane_shows_in_the_trigger_status_and_delivery_log(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "newsletter", priority="bulk")
    await publish(admin, "EVTnewsletter")

    accepted = await trigger(admin, "EVTnewsletter", ADA)
    assert accepted["priority"] == "bulk"
    done = await wait_status(admin, accepted["href"], "processed")
    assert done["priority"] == "bulk"
    log = await delivery_log_answer(admin, "EVTnewsletter", accepted["PKey"])
    assert log["priority"] == "bulk" and log["status"] == "processed"


async def test_a_live_configuration_may_change_lanes_for_later_events(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "digest")
    await publish(admin, "EVTdigest")
    r = await admin.post(f"{EVENTS}/EVTdigest/pause")
    assert r.status_code == 200, r.text
    before = await trigger(admin, "EVTdigest", ADA)  # waits, paused, in the transactional lane

    r = await admin.patch(f"{EVENTS}/EVTdigest", json={"priority": "bulk"})
    assert r.status_code == 200, r.text
    assert r.json()["priority"] == "bulk" and r.json()["state"] == "paused"
    after = await trigger(admin, "EVTdigest", ADA)
    assert (before["priority"], after["priority"]) == ("transactional", "bulk")

    r = await admin.post(f"{EVENTS}/EVTdigest/resume")
    assert r.status_code == 200, r.text
    # Each event keeps the lane it was queued in.
    assert (await wait_status(admin, before["href"], "processed"))["priority"] == "transactional"
    assert (await wait_status(admin, after["href"], "processed"))["priority"] == "bulk"


BACKLOG = 300
IN_FLIGHT = 4


@pytest.mark.server_settings(max_in_flight=IN_FLIGHT)
async def test_a_transactional_event_overtakes_a_bulk_backlog(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "newsletter", priority="bulk")
    await create_event(admin, "passwordReset")
    for event_id in ("EVTnewsletter", "EVTpasswordReset"):
        await publish(admin, event_id)
    smtp.delay = 0.01  # a slow relay: the backlog takes a while to drain

    backlog = [
        {"email": f"reader{i}@example.org", "ctx": {"firstName": "Reader"}} for i in range(BACKLOG)
    ]
    r = await admin.post("/rest/mc/EVTnewsletter/batch", json={"events": backlog})
    assert r.status_code == 201, r.text
    await smtp.wait_for(IN_FLIGHT * 3)  # the dispatcher is busy with the backlog

    urgent = await trigger(admin, "EVTpasswordReset", {**ADA, "email": "urgent@example.org"})
    committed = len(smtp.messages)
    assert committed < BACKLOG // 2, "the backlog drained before the test could overtake it"
    await wait_status(admin, urgent["href"], "processed", timeout=20)
    order = [m.rcpt_tos[0] for m in smtp.messages]
    position = order.index("urgent@example.org")
    # Behind it, at most what was in flight when it was queued (and a claim racing it).
    assert position <= committed + 2 * IN_FLIGHT, (position, committed)

    # The backlog is then sent whole, each event once.
    received = [m.rcpt_tos[0] for m in await smtp.wait_for(BACKLOG + 1, timeout=30)]
    assert len(received) == len(set(received)) == BACKLOG + 1


DEEP_BACKLOG = 2_000
CONNECTIONS = 4


@pytest.mark.server_settings(max_in_flight=64)
async def test_a_transactional_event_does_not_wait_for_bulk_in_flight(
    server, smtp: FakeSMTPServer
) -> None:
    """Many bulk events in flight, few SMTP connections: the transactional event takes a slot
    kept for its lane, and the next free connection (ahead of the bulk sends waiting)."""
    admin = server.admin
    relay = {"host": smtp.host, "port": smtp.port, "tls": "none", "pool_size": CONNECTIONS}
    channel = {"name": "mail", "channel": "email", "from_email": "shop@example.com"}
    r = await admin.post("/api/v1/channel-configs", json={**channel, "smtp": relay})
    assert r.status_code == 201, r.text
    await create_event(admin, "newsletter", priority="bulk")
    await create_event(admin, "passwordReset")
    for event_id in ("EVTnewsletter", "EVTpasswordReset"):
        await publish(admin, event_id)
    smtp.delay = 0.02  # a slow relay: bulk sends queue for its connections

    for start in range(0, DEEP_BACKLOG, 1000):
        backlog = [
            {"email": f"reader{i}@example.org", "ctx": {"firstName": "Reader"}}
            for i in range(start, start + 1000)
        ]
        r = await admin.post("/rest/mc/EVTnewsletter/batch", json={"events": backlog})
        assert r.status_code == 201, r.text
    await smtp.wait_for(40, timeout=30)  # the bulk share of the slots is in flight

    urgent = await trigger(admin, "EVTpasswordReset", {**ADA, "email": "urgent@example.org"})
    committed = len(smtp.messages)
    await wait_status(admin, urgent["href"], "processed", timeout=20)
    order = [m.rcpt_tos[0] for m in smtp.messages]
    position = order.index("urgent@example.org")
    assert position < DEEP_BACKLOG // 4, "sent after most of the backlog"
    # Ahead of it, the sends holding a connection when it was queued (and a few racing it);
    # not the dozens of bulk sends in flight waiting for one.
    assert position <= committed + 3 * CONNECTIONS, (position, committed)


async def test_a_batch_answer_gives_each_accepted_items_lane_as_a_single_answer_does(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "newsletter", priority="bulk")
    await publish(admin, "EVTnewsletter")
    await create_event(admin, "receipt")
    await publish(admin, "EVTreceipt")
    for event_id, lane in (("EVTnewsletter", "bulk"), ("EVTreceipt", "transactional")):
        single = await trigger(admin, event_id, ADA)
        r = await admin.post(f"/rest/mc/{event_id}/batch", json={"events": [ADA, {"ctx": {}}]})
        assert r.status_code == 207, r.text
        accepted, refused = r.json()["items"]
        assert (single["priority"], accepted["priority"]) == (lane, lane)
        # What the two answers share, they name alike.
        assert set(accepted) - {"index"} <= set(single), (accepted, single)
        assert "priority" not in refused  # a refused item has no lane: nothing is queued


async def test_a_null_for_a_field_of_fixed_values_says_which_values_it_takes(
    server, smtp: FakeSMTPServer
) -> None:
    """A null is a value sent: "is required" would deny it was; the answer lists the values."""
    admin = server.admin
    await create_channel(admin, smtp)
    await create_event(admin, "x")
    for field, values in (
        ("priority", "transactional, bulk"),
        ("channel", "email, sms"),  # was a 409, "cannot be changed": null is no channel
        ("target", "event, profile"),
    ):
        r = await admin.patch(f"{EVENTS}/EVTx", json={field: None})
        problem = assert_problem(r, 400, field)
        assert problem["errors"][0]["detail"] == f"must be one of: {values}", problem
    row = (await admin.get(f"{EVENTS}/EVTx")).json()
    assert (row["priority"], row["channel"], row["target"]) == ("transactional", "email", "event")
    # On create a null priority is the spec's "left out": the default lane.
    made = await create_event(admin, "y", priority=None)
    assert made["priority"] == "transactional"
