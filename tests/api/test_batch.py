"""POST /rest/mc/{eventId}/batch: up to 1,000 triggers in one request, one commit, one answer
item per input, and one Idempotency-Key for the whole batch."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import (
    assert_problem,
    create_event,
    create_key,
    live_event,
    live_sms_event,
    trigger,
    wait_status,
)
from txmsg.api import trigger_batch
from txmsg.core.json_numbers import NOT_A_DOUBLE, NOT_UNICODE, NOT_UNICODE_NAME, RANGE_TEXT
from txmsg.core.rate_limit import KeyLimit
from txmsg.store.db import Database
from txmsg.store.tables import events
from txmsg.testing import FakeSMTPServer

FIELDS = [
    {"name": "firstName", "type": "string", "required": True},
    {"name": "amount", "type": "number", "required": False},
]


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {"email": f"user{i}@example.org", "ctx": {"firstName": f"U{i}"}, **extra}


async def stored_pkeys(store: Database, event_id: str) -> list[str]:
    def read(conn: sa.Connection) -> list[str]:
        query = sa.select(events.c.pkey).where(events.c.event_id == event_id)
        return sorted(conn.execute(query).scalars())

    return await store.read(read)


async def test_a_batch_of_good_items_is_created_and_sent(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    website = server.client(await create_key(admin, "trigger"))
    body = {"events": [person(i) for i in range(25)]}
    r = await website.post(f"/rest/mc/{event_id}/batch", json=body)
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    answer = r.json()
    assert (answer["accepted"], answer["refused"]) == (25, 0)
    items = answer["items"]
    assert [i["index"] for i in items] == list(range(25))
    assert all(i["status"] == "pending" for i in items)
    assert len({i["PKey"] for i in items}) == 25
    assert all(i["href"] == f"/rest/mc/{event_id}/{i['PKey']}" for i in items)

    received = await smtp.wait_for(25)
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(e["email"] for e in body["events"])
    done = await wait_status(website, items[7]["href"], "processed")
    assert done["email"] == "user7@example.org" and done["ctx"] == {"firstName": "U7"}
    await website.aclose()


async def test_items_take_every_field_of_a_single_trigger(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    later = {
        "email": "later@example.org",
        "ctx": {"firstName": "L", "amount": 3.5},
        "scheduled": "2099-01-01T10:00:00Z",
        "expiration": "2099-01-02T10:00:00Z",
    }
    r = await admin.post(f"/rest/mc/{event_id}/batch", json={"events": [later, person(1)]})
    assert r.status_code == 201, r.text
    scheduled, now = r.json()["items"]
    stored = (await admin.get(scheduled["href"])).json()
    assert stored["scheduled"] == "2099-01-01T10:00:00.000Z"
    assert stored["expiration"] == "2099-01-02T10:00:00.000Z"
    assert stored["status"] == "pending"
    await wait_status(admin, now["href"], "processed")
    assert (await admin.get(scheduled["href"])).json()["status"] == "pending"  # not yet due


async def test_sms_items_take_a_mobile_phone(server, fake_twilio) -> None:
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url)
    items = [
        {"mobilePhone": "+1 (415) 555-2671", "ctx": {"firstName": "A"}},
        {"ctx": {"firstName": "B"}},
    ]
    r = await admin.post(f"/rest/mc/{event_id}/batch", json={"events": items})
    assert r.status_code == 207, r.text
    sent, refused = r.json()["items"]
    assert refused["problem"]["errors"][0]["field"] == "events[1].mobilePhone"
    stored = (await admin.get(sent["href"])).json()
    assert stored["mobilePhone"] == "+14155552671"


async def test_bad_items_are_refused_alone(server, smtp: FakeSMTPServer, store) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    body = {
        "events": [
            person(0),
            {"email": "not an address", "ctx": {"firstName": "A"}},
            person(2),
            {"email": "b@example.org", "ctx": {"amount": "many"}},
            "not an object",
            {**person(5), "extra": 1},
            person(6, scheduled="2099-01-02T00:00:00Z", expiration="2099-01-01T00:00:00Z"),
            person(7),
        ]
    }
    r = await admin.post(f"/rest/mc/{event_id}/batch", json=body)
    assert r.status_code == 207, r.text
    answer = r.json()
    assert (answer["accepted"], answer["refused"]) == (3, 5)
    items = answer["items"]
    assert [i["index"] for i in items] == list(range(8))
    accepted = {i["index"]: i for i in items if "PKey" in i}
    assert sorted(accepted) == [0, 2, 7]
    refused = {i["index"]: i["problem"] for i in items if "problem" in i}
    assert {i: sorted(e["field"] for e in p["errors"]) for i, p in refused.items()} == {
        1: ["events[1].email"],
        3: ["events[3].ctx.amount", "events[3].ctx.firstName"],
        4: ["events[4]"],
        5: ["events[5].extra"],
        6: ["events[6].expiration"],
    }
    for index, problem in refused.items():
        # Item 3 is valid by the spec, refused by the event's declared fields.
        status, title = (422, "Unprocessable Content") if index == 3 else (400, "Bad Request")
        assert (problem["status"], problem["title"]) == (status, title)
        assert problem["detail"].startswith(f"events[{index}]")
    assert refused[3]["errors"][0]["pointer"].startswith("/events/3/ctx/")

    # The good ones are stored and sent; nothing of the bad ones.
    assert await stored_pkeys(store, event_id) == sorted(i["PKey"] for i in accepted.values())
    received = await smtp.wait_for(3)
    assert sorted(m.rcpt_tos[0] for m in received) == [
        "user0@example.org",
        "user2@example.org",
        "user7@example.org",
    ]


async def test_an_items_integer_past_64_bits_refuses_that_item_alone(
    server, smtp: FakeSMTPServer, store
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    body = {"events": [person(0), {**person(1), "ctx": {"n": 123456789012345678901234567890}}]}
    r = await admin.post(f"/rest/mc/{event_id}/batch", json=body)
    assert r.status_code == 207, r.text
    good, bad = r.json()["items"]
    problem = bad["problem"]
    assert (bad["index"], problem["status"]) == (1, 400)
    assert problem["errors"] == [
        {"field": "events[1].ctx.n", "pointer": "/events/1/ctx/n", "detail": RANGE_TEXT}
    ]
    assert await stored_pkeys(store, event_id) == [good["PKey"]]


async def test_a_number_past_a_double_or_a_lone_surrogate_refuses_that_item_alone(
    server, smtp: FakeSMTPServer, store
) -> None:
    """Valid JSON the fast parser refuses (a number past a double's range, a string or a name
    holding a lone surrogate) refuses the item holding it, naming its field, as an integer
    past 64 bits does; the single trigger names it too. It refused the whole batch with a
    400 naming no field."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}/batch"
    items = [
        b'{"email": "a@example.org", "ctx": {"firstName": "A"}}',
        b'{"email": "b@example.org", "ctx": {"firstName": "B", "n": 1e999}}',
        b'{"email": "c@example.org", "ctx": {"firstName": "C\\ud800"}}',
        b'{"email": "d@example.org", "ctx": {"firstName": "D", "\\udfffk": 1}}',
        b'{"email": "e@example.org", "ctx": {"firstName": "E \\ud83d\\ude00", "f": 1e300}}',
    ]
    body = b'{"events": [' + b", ".join(items) + b"]}"
    r = await admin.post(url, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 207, r.text
    answer = r.json()
    refused = {i["index"]: i["problem"]["errors"] for i in answer["items"] if "problem" in i}
    assert refused == {
        1: [{"field": "events[1].ctx.n", "pointer": "/events/1/ctx/n", "detail": NOT_A_DOUBLE}],
        2: [
            {
                "field": "events[2].ctx.firstName",
                "pointer": "/events/2/ctx/firstName",
                "detail": NOT_UNICODE,
            }
        ],
        3: [
            {
                "field": "events[3].ctx.\\udfffk",
                "pointer": "/events/3/ctx/\\udfffk",
                "detail": NOT_UNICODE_NAME,
            }
        ],
    }, refused
    accepted = [i for i in answer["items"] if "PKey" in i]
    assert [i["index"] for i in accepted] == [0, 4]
    assert await stored_pkeys(store, event_id) == sorted(i["PKey"] for i in accepted)
    sent = await wait_status(admin, accepted[1]["href"], "processed")
    assert sent["ctx"] == {"firstName": "E \U0001f600", "f": 1e300}  # a pair is a character
    # Under an Idempotency-Key, the number past a double's range and the string of its text
    # are two bodies (the lenient reading holds the first as that text): a 422, not a replay.
    keyed = {"content-type": "application/json", "idempotency-key": "inexact-1"}
    first = b'{"events": [' + items[1] + b", " + items[0] + b"]}"
    r = await admin.post(url, content=first, headers=keyed)
    assert r.status_code == 207, r.text
    assert (await admin.post(url, content=first, headers=keyed)).status_code == 207  # replay
    as_text = first.replace(b'"n": 1e999', b'"n": "1e999"')
    assert_problem(await admin.post(url, content=as_text, headers=keyed), 422)
    # The single trigger names the field too (a 400 naming none before).
    for item, field in ((items[1], "ctx.n"), (items[2], "ctx.firstName")):
        r = await admin.post(
            f"/rest/mc/{event_id}", content=item, headers={"content-type": "application/json"}
        )
        assert_problem(r, 400, field)


async def test_checks_of_an_items_values_refuse_that_item_alone(
    server, smtp: FakeSMTPServer, store
) -> None:
    """Integers past 64 bits (even too long for a double), NUL characters and nesting too
    deep for storage are each an item's problem, naming its field as the single trigger
    does; the other items are stored. What concerns the whole body is refused whole."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    bad = [
        {"email": "a@example.org", "ctx": {"firstName": "A", "n": 123456789012345678901234567890}},
        {"email": "b@example.org", "ctx": {"firstName": "B", "ids": [1, -(2**63) - 1]}},
        {"email": "c@example.org", "ctx": {"firstName": "C\u0000"}},
        {"email": "d@example.org", "ctx": {"firstName": "D", "deep": deep}},
    ]
    items = [person(0), *bad, person(5, ctx={"firstName": "U5", "n": 2**63 - 1})]
    # One more item: an integer one digit past Python's longest conversion (4,300 digits).
    last = '{"email": "e@example.org", "ctx": {"n": ' + "9" * 4301 + "}}"
    text = json.dumps({"events": items}).removesuffix("]}") + ", " + last + "]}"
    r = await admin.post(
        f"/rest/mc/{event_id}/batch",
        content=text.encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 207, r.text
    answer = r.json()
    assert (answer["accepted"], answer["refused"]) == (2, 5)
    refused = {i["index"]: i["problem"] for i in answer["items"] if "problem" in i}
    assert {i: [e["field"] for e in p["errors"]] for i, p in refused.items()} == {
        1: ["events[1].ctx.n"],
        2: ["events[2].ctx.ids[1]"],
        3: ["events[3].ctx.firstName"],
        4: ["events[4].ctx"],
        6: ["events[6].ctx.n"],
    }
    for index in (1, 2, 6):
        assert refused[index]["errors"][0]["detail"] == RANGE_TEXT
        assert refused[index]["status"] == 400
    assert refused[1]["errors"][0]["pointer"] == "/events/1/ctx/n"
    accepted = [i for i in answer["items"] if "PKey" in i]
    assert [i["index"] for i in accepted] == [0, 5]
    assert await stored_pkeys(store, event_id) == sorted(i["PKey"] for i in accepted)
    stored = await wait_status(admin, accepted[1]["href"], "processed")
    assert stored["ctx"]["n"] == 2**63 - 1  # kept exact

    # A body whose envelope holds such an integer is still refused whole.
    url = f"/rest/mc/{event_id}/batch"
    whole = b'{"events": [{"email": "a@example.org"}], "n": 123456789012345678901234567890}'
    r = await admin.post(url, content=whole, headers={"content-type": "application/json"})
    assert_problem(r, 400, "n")
    r = await admin.post(url, json={"events": 123456789012345678901234567890})
    assert_problem(r, 400, "events")
    # An item nested 1,000 levels deep, beside a run of 19 digits anywhere in the body (which
    # has the body read exactly): that item is refused alone, as without the digits.
    deepest = b"[" * 1000 + b"1" * 19 + b"]" * 1000
    for digits in (b"1" * 19, b"1"):
        nested = (
            b'{"events": [{"email": "f@example.org", "ctx": {"firstName": "F", "o": "ORD-'
            + digits
            + b'"}}, {"email": "g@example.org", "ctx": {"firstName": "G", "n": '
            + deepest
            + b"}}]}"
        )
        r = await admin.post(url, content=nested, headers={"content-type": "application/json"})
        assert r.status_code == 207, r.text
        assert [i.get("problem", {}).get("errors") for i in r.json()["items"]] == [
            None,
            [
                {
                    "field": "events[1].ctx",
                    "pointer": "/events/1/ctx",
                    "detail": "is nested too deeply",
                }
            ],
        ]
    # Deeper than the JSON parser reads at all: the body is refused whole.
    deeper = b'{"events": [{"ctx": {"n": ' + b"[" * 1100 + b"1" + b"]" * 1100 + b"}}]}"
    r = await admin.post(url, content=deeper, headers={"content-type": "application/json"})
    assert assert_problem(r, 400, "body")["errors"][0]["detail"] == "is nested too deeply"
    assert len(await stored_pkeys(store, event_id)) == 4


async def test_a_batch_with_every_item_refused_stores_nothing(server, smtp, store) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.post(
        f"/rest/mc/{event_id}/batch", json={"events": [{"ctx": {}}, {"email": "x@example.org"}]}
    )
    assert r.status_code == 207, r.text
    assert (r.json()["accepted"], r.json()["refused"]) == (0, 2)
    assert await stored_pkeys(store, event_id) == []


async def test_the_envelope_is_checked_whole(server, smtp: FakeSMTPServer, store) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}/batch"
    assert_problem(await admin.post(url, json={"events": []}), 400, "events")
    assert_problem(await admin.post(url, json={}), 400, "events")
    assert_problem(await admin.post(url, json={"events": None}), 400, "events")
    assert_problem(await admin.post(url, json={"events": {"email": "a@b.org"}}), 400, "events")
    assert_problem(await admin.post(url, json={"events": [], "more": 1}), 400, "more")
    assert_problem(await admin.post(url, json=[person(0)]), 400, "body")
    assert_problem(await admin.post(url, json=person(0)), 400, "email")
    r = await admin.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert_problem(r, 400)
    assert_problem(await admin.post(url), 400)

    too_many = {"events": [person(i) for i in range(1001)]}
    problem = assert_problem(await admin.post(url, json=too_many), 400, "events")
    assert "1000" in problem["detail"]
    big = b'{"events": [{"ctx": {"firstName": "' + b"x" * server.settings.max_body_bytes + b'"}}]}'
    r = await admin.post(url, content=big, headers={"content-type": "application/json"})
    assert_problem(r, 413)
    assert await stored_pkeys(store, event_id) == []

    most = {"events": [person(i) for i in range(1000)]}
    r = await admin.post(url, json=most)
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] == 1000
    assert len(await stored_pkeys(store, event_id)) == 1000


async def test_one_idempotency_key_covers_the_batch(server, smtp: FakeSMTPServer, store) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}/batch"
    key = {"Idempotency-Key": "newsletter-2026-12"}
    body = {"events": [person(0), {"ctx": {}}, person(2)]}
    first = await admin.post(url, json=body, headers=key)
    assert first.status_code == 207, first.text
    await smtp.wait_for(2)

    # The same body again (and concurrently): the first answer, nothing stored again.
    replays = await asyncio.gather(*(admin.post(url, json=body, headers=key) for _ in range(3)))
    for again in replays:
        assert again.status_code == 207, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    accepted = sorted(i["PKey"] for i in first.json()["items"] if "PKey" in i)
    assert await stored_pkeys(store, event_id) == accepted

    # Another body, or the same body on another event, or a single trigger: a mismatch.
    other = {"events": [person(0), person(2)]}
    problem = assert_problem(await admin.post(url, json=other, headers=key), 422)
    assert "Idempotency-Key" in problem["detail"]
    await create_event(admin, "second", fields=FIELDS)
    r = await admin.post("/api/v1/event-configs/EVTsecond/publish")
    assert r.status_code == 200, r.text
    assert_problem(await admin.post("/rest/mc/EVTsecond/batch", json=body, headers=key), 422)
    assert_problem(await admin.post(f"/rest/mc/{event_id}", json=person(0), headers=key), 422)
    assert_problem(await admin.post(url, json=body, headers={"Idempotency-Key": ""}), 400)
    assert await stored_pkeys(store, event_id) == accepted

    # A key is the caller's own: another API key with the same key is another request.
    website = server.client(await create_key(admin, "trigger"))
    r = await website.post(url, json=other, headers=key)
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    await smtp.wait_for(4)
    await asyncio.sleep(0.2)  # a duplicate would have been sent by now
    assert len(smtp.messages) == 4
    await website.aclose()


async def test_the_batch_answers_as_the_single_trigger_to_callers_and_events(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}/batch"
    body = {"events": [person(0)]}
    assert_problem(await server.client().post(url, json=body), 401)
    assert_problem(await server.client("nope").post(url, json=body), 401)
    marketer = server.client(await create_key(admin, "marketer"))
    assert_problem(await marketer.post(url, json=body), 403)
    await marketer.aclose()
    assert_problem(await admin.post("/rest/mc/EVTnope/batch", json=body), 404)
    await create_event(admin, "draft", fields=FIELDS)
    assert_problem(await admin.post("/rest/mc/EVTdraft/batch", json=body), 404)

    # A paused event takes its batch's events as `paused`, as it takes a single trigger's.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    r = await admin.post(url, json=body)
    assert r.status_code == 201, r.text
    [held] = r.json()["items"]
    assert held["status"] == "paused"
    assert held["reason"].startswith("the event configuration is paused")
    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "processed")

    # A single trigger and a batch item of the same body are stored alike.
    single = await trigger(admin, event_id, person(0))
    one = (await admin.get(held["href"])).json()
    two = await wait_status(admin, single["href"], "processed")
    for same in ("email", "ctx", "priority", "type", "status"):
        assert one[same] == two[same], same


def _request(path: str, key: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response off a kept-alive connection: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


@pytest.mark.server_settings(
    trigger_rate_limit=KeyLimit(100_000, 100_000),
    config_cache_seconds=60.0,  # the event's facts read once: the single trigger waits for no read
)
@pytest.mark.parametrize("items_per_turn", [trigger_batch.ITEMS_PER_TURN, 10_000])
async def test_a_single_trigger_is_not_held_up_by_a_batch_being_checked(
    server, smtp: FakeSMTPServer, monkeypatch: pytest.MonkeyPatch, items_per_turn: int
) -> None:
    """A single trigger that arrives while a batch of 1,000 is being checked reaches the write
    funnel ahead of it: the batch leaves the event loop to other requests between runs of its
    items. (With runs longer than the batch, the batch goes first: the test sees the
    difference.)"""
    monkeypatch.setattr(trigger_batch, "ITEMS_PER_TURN", items_per_turn)
    event_id = await live_event(server.admin, smtp)
    key = await create_key(server.admin, "trigger")
    port = int(server.base_url.rsplit(":", 1)[1])
    batch_path, single_path = f"/rest/mc/{event_id}/batch", f"/rest/mc/{event_id}"
    # Two connections, each used once: both accepted, the key and the event's facts cached.
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for (reader, writer), path, body in zip(
        connections, (batch_path, single_path), ({"events": [person(0)]}, person(0)), strict=True
    ):
        writer.write(_request(path, key, json.dumps(body).encode()))
        assert (await _response(reader))[0] == 201

    reached: list[str] = []
    ctx = server.app.state.txmsg

    def noting(name: str, submit: Any) -> Any:
        async def noted(item: Any) -> Any:
            reached.append(name)
            return await submit(item)

        return noted

    server.app.state.txmsg = replace(
        ctx,
        enqueue=noting("single", ctx.enqueue),
        enqueue_batch=noting("batch", ctx.enqueue_batch),
    )
    (batch_reader, batch_writer), (single_reader, single_writer) = connections
    single = _request(single_path, key, json.dumps(person(1)).encode())
    parse_item = trigger_batch.parse_item

    def checking(index: int, *rest: Any) -> Any:
        if index == 0:  # the batch is being checked: the single trigger arrives now
            single_writer.write(single)
        return parse_item(index, *rest)

    monkeypatch.setattr(trigger_batch, "parse_item", checking)
    batch = json.dumps({"events": [person(i) for i in range(1000)]}).encode()
    batch_writer.write(_request(batch_path, key, batch))
    assert (await _response(batch_reader))[0] == 201
    assert (await _response(single_reader))[0] == 201
    for _, writer in connections:
        writer.close()
    expected = ["single", "batch"] if items_per_turn < 1000 else ["batch", "single"]
    assert reached == expected


async def test_any_number_of_integers_too_long_for_a_double_refuse_their_items_alone(
    server, smtp: FakeSMTPServer, store
) -> None:
    """The JSON parser refuses an integer of 309 digits or more outright: a body holding 40
    of them is read again once, and each item names its own."""
    event_id = await live_event(server.admin, smtp)
    long = "9" * 400
    items = [
        f'{{"email": "u{i}@example.org", "ctx": {{"firstName": "A", "n": {long}}}}}'
        for i in range(40)
    ]
    text = '{"events": [' + ", ".join([*items, json.dumps(person(40))]) + "]}"
    r = await server.admin.post(
        f"/rest/mc/{event_id}/batch", content=text, headers={"content-type": "application/json"}
    )
    assert r.status_code == 207, r.text
    answer = r.json()
    assert (answer["accepted"], answer["refused"]) == (1, 40)
    fields = [i["problem"]["errors"][0]["field"] for i in answer["items"] if "problem" in i]
    assert fields == [f"events[{i}].ctx.n" for i in range(40)]
    assert len(await stored_pkeys(store, event_id)) == 1


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ('"' + "9" * 400 + '"', "9" * 400),  # text, then an integer the parser reads as text
        ("1.1805916207174113e21", "1180591620717411303424"),  # a float, then its integer
    ],
)
async def test_a_key_tells_apart_bodies_the_parser_reads_alike(
    server, smtp: FakeSMTPServer, first: str, then: str
) -> None:
    """Integers past 64 bits are read as floats (or as text, past a double): the key's
    fingerprint holds them as written, so another body is a mismatch, not a replay."""
    event_id = await live_event(server.admin, smtp)
    url = f"/rest/mc/{event_id}/batch"
    headers = {"content-type": "application/json", "Idempotency-Key": "exact"}

    def body(n: str) -> str:
        item = f'{{"email": "b@example.org", "ctx": {{"firstName": "B", "n": {n}}}}}'
        return '{"events": [' + json.dumps(person(0)) + ", " + item + "]}"

    r = await server.admin.post(url, content=body(first), headers=headers)
    assert r.status_code in (201, 207), r.text
    assert_problem(await server.admin.post(url, content=body(then), headers=headers), 422)
    again = await server.admin.post(url, content=body(first), headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == r.json()


async def test_a_key_holding_a_dot_or_an_index_is_pointed_at_exactly(
    server, smtp: FakeSMTPServer
) -> None:
    """Field names are dotted (`ctx.a.b`); the JSON pointer says which key it was."""
    event_id = await live_event(server.admin, smtp)
    long = 12345678901234567890123
    item = {"email": "a@example.org", "ctx": {"firstName": "A", "a.b": long, "c[1]": [0, long]}}
    text = json.dumps({"events": [person(0), item]})
    r = await server.admin.post(
        f"/rest/mc/{event_id}/batch", content=text, headers={"content-type": "application/json"}
    )
    assert r.status_code == 207, r.text
    [error] = r.json()["items"][1]["problem"]["errors"]
    assert (error["field"], error["pointer"]) == ("events[1].ctx.a.b", "/events/1/ctx/a.b")
    single = json.dumps({"email": "a@example.org", "ctx": {"firstName": "A", "c[1]": [0, long]}})
    r = await server.admin.post(
        f"/rest/mc/{event_id}", content=single, headers={"content-type": "application/json"}
    )
    error = assert_problem(r, 400, "ctx.c[1][1]")["errors"][0]
    assert error["pointer"] == "/ctx/c[1]/1"
