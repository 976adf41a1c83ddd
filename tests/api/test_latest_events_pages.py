"""GET /api/v1/events/{eventId} in pages: `next_cursor` / `cursor` (keyset on the trigger date,
then the id), `since` / `until`; every old event exactly once while new ones arrive."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from helpers import assert_problem, live_event

FIRST_NAMES = {"firstName": "U"}


async def _paused_event(server: Any, smtp: Any) -> str:
    """A live event, paused: its triggers are stored and stay as they are (nothing is sent)."""
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    return event_id


async def _batch(admin: httpx.AsyncClient, event_id: str, count: int, tag: str) -> list[str]:
    events = [{"email": f"{tag}{i}@example.org", "ctx": FIRST_NAMES} for i in range(count)]
    r = await admin.post(f"/rest/mc/{event_id}/batch", json={"events": events})
    assert r.status_code == 201, r.text
    return [item["PKey"] for item in r.json()["items"]]


async def _page(admin: httpx.AsyncClient, event_id: str, **params: Any) -> dict[str, Any]:
    r = await admin.get(f"/api/v1/events/{event_id}", params=params)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def test_every_page_while_new_events_arrive(server, smtp) -> None:
    admin = server.admin
    event_id = await _paused_event(server, smtp)
    old: list[str] = []
    for n in range(5):  # five trigger dates, fifty events sharing each: ties broken by id
        old += await _batch(admin, event_id, 50, f"old{n}-")
        await asyncio.sleep(0.01)

    seen: list[str] = []
    dates: list[str] = []
    arrived: list[str] = []
    cursor = None
    for n in range(10):
        params: dict[str, Any] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        page = await _page(admin, event_id, **params)
        seen += [item["PKey"] for item in page["items"]]
        dates += [item["eventDate"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        arrived += await _batch(admin, event_id, 7 + n, f"new{n}-")  # at the head, meanwhile
    assert [len(p) for p in (seen, arrived)] == [250, 7 + 8]
    assert sorted(seen) == sorted(old)  # each old event exactly once, none of the new ones
    assert dates == sorted(dates, reverse=True)  # newest first
    # Within one trigger date, the later stored first: the batch in reverse.
    assert seen[:50] == old[200:][::-1]

    # The first page is the newest, new ones included; the default answer keeps its shape.
    first = await _page(admin, event_id)
    assert [i["PKey"] for i in first["items"]] == [*arrived[::-1], *old[::-1][:5]]
    assert first["next_cursor"] is not None
    everything = await _page(admin, event_id, limit=100, status="paused")
    assert len(everything["items"]) == 100
    assert set(everything["items"][0]) >= {"PKey", "status", "eventDate", "delivery_log"}


async def test_the_last_page_has_no_cursor(server, smtp) -> None:
    admin = server.admin
    event_id = await _paused_event(server, smtp)
    pkeys = await _batch(admin, event_id, 3, "a")
    page = await _page(admin, event_id, limit=3)
    assert [i["PKey"] for i in page["items"]] == pkeys[::-1]
    assert page["next_cursor"] is None
    page = await _page(admin, event_id, limit=2)
    assert page["next_cursor"] is not None
    rest = await _page(admin, event_id, limit=2, cursor=page["next_cursor"])
    assert [i["PKey"] for i in rest["items"]] == pkeys[:1]
    assert rest["next_cursor"] is None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a" * 129,
        "abcde",  # not base64 (length 1 mod 4)
        _b64("hello"),
        _b64("1.1700000000000000.12"),  # no digest
        _b64("1.999999999999999999.12.0123456789abcdef"),  # past the year 9000
        _b64("1.0.12.0123456789abcdef"),  # before 2000
        _b64("1.1700000000000000.0.0123456789abcdef"),  # id 0
        _b64("1.1700000000000000.99999999999999999999.0123456789abcdef"),  # past 64 bits
        _b64("2.1700000000000000.12.0123456789abcdef"),
        "\u0661\u0662",
    ],
)
async def test_a_malformed_cursor_is_a_400_naming_it(server, smtp, cursor: str) -> None:
    event_id = await _paused_event(server, smtp)
    r = await server.admin.get(f"/api/v1/events/{event_id}", params={"cursor": cursor})
    assert_problem(r, 400, "cursor")


async def test_another_listings_cursor_is_refused(server, smtp) -> None:
    admin = server.admin
    event_id = await _paused_event(server, smtp)
    await _batch(admin, event_id, 3, "a")
    cursor = (await _page(admin, event_id, limit=1))["next_cursor"]
    for params in ({"status": "paused"}, {"since": "2001-01-01T00:00:00Z"}):
        r = await admin.get(f"/api/v1/events/{event_id}", params={"cursor": cursor, **params})
        assert_problem(r, 422, "cursor")
    # A forged one of the right shape, but of no listing.
    forged = _b64("1.1700000000000000.12.0123456789abcdef")
    r = await admin.get(f"/api/v1/events/{event_id}", params={"cursor": forged})
    assert_problem(r, 422, "cursor")


async def test_since_and_until_bound_the_trigger_date(server, smtp) -> None:
    admin = server.admin
    event_id = await _paused_event(server, smtp)
    batches = []
    for tag in ("a", "b", "c"):
        batches.append(await _batch(admin, event_id, 3, tag))
        await asyncio.sleep(0.05)
    items = (await _page(admin, event_id, limit=100))["items"]
    date = {i["PKey"]: i["eventDate"] for i in items}
    b_date, c_date = date[batches[1][0]], date[batches[2][0]]  # milliseconds, rounded down

    only_b = await _page(admin, event_id, since=b_date, until=c_date)
    assert [i["PKey"] for i in only_b["items"]] == batches[1][::-1]
    from_b = await _page(admin, event_id, since=b_date)
    assert {i["PKey"] for i in from_b["items"]} == {*batches[1], *batches[2]}
    before_c = await _page(admin, event_id, until=c_date)
    assert {i["PKey"] for i in before_c["items"]} == {*batches[0], *batches[1]}
    # An offset is read as one: the same instant written in UTC+02:00.
    shifted = b_date.replace("Z", "+00:00")
    assert (await _page(admin, event_id, since=shifted))["items"] == from_b["items"]

    # Pages within the bounds.
    walked: list[str] = []
    params: dict[str, Any] = {"since": b_date, "limit": 2}
    while True:
        page = await _page(admin, event_id, **params)
        walked += [i["PKey"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == [*batches[2][::-1], *batches[1][::-1]]

    for name in ("since", "until"):
        for bad in ("yesterday", "1999-12-31T23:59:59Z", "9999-01-01T00:00:00Z", "2026-13-01"):
            r = await admin.get(f"/api/v1/events/{event_id}", params={name: bad})
            assert_problem(r, 400, name)
    r = await admin.get(f"/api/v1/events/{event_id}", params={"since": c_date, "until": b_date})
    assert_problem(r, 422, "since")
