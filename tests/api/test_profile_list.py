"""GET /api/v1/profiles: profiles found by email (any case) or phone, written since a date, and
paged through by `profile_id` with `next_cursor` / `cursor`; bad parameters a 400 naming them."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson

from helpers import assert_problem, create_key, forbid_server_errors
from profile_helpers import put_profile

LIST = "/api/v1/profiles"
ARABIC_THREE = "\u0663"


async def _page(admin: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await admin.get(LIST, params=params)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert set(answer) == {"items", "next_cursor"}, answer
    return answer


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["profile_id"] for item in page["items"]]


async def _walk(admin: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """Every page's profile ids, from the first page to the one without a `next_cursor`."""
    pages: list[list[str]] = []
    while True:
        page = await _page(admin, **params)
        pages.append(_ids(page))
        if page["next_cursor"] is None:
            return pages
        params["cursor"] = page["next_cursor"]
        assert len(pages) < 50, "the walk never ends"


async def _import(admin: httpx.AsyncClient, rows: list[dict[str, Any]]) -> None:
    body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    r = await admin.post(
        "/api/v1/profiles:import", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == 0, r.text


async def test_found_by_email_in_any_case_each_as_get_answers_it(server) -> None:
    admin = forbid_server_errors(server.admin)
    await put_profile(
        admin,
        "b-ada",
        email="Ada@Example.ORG",
        mobilePhone="+33 6 12 34 56 78",
        first_name="Ada",
        language="fr",
        attributes={"tier": "gold"},
        email_opt_out=True,
    )
    await put_profile(admin, "a-ada", email="ada@example.org")  # the same mailbox, two profiles
    await put_profile(admin, "c-grace", email="grace@example.org")
    await put_profile(admin, "d-news", email="ada+news@example.org")
    await put_profile(admin, "e-none", first_name="No address")

    for asked in ("ADA@example.org", "ada@EXAMPLE.org", "Ada@Example.ORG"):
        page = await _page(admin, email=asked)
        assert _ids(page) == ["a-ada", "b-ada"], asked
        assert page["next_cursor"] is None
        for item in page["items"]:  # each item as GET /api/v1/profiles/{id} answers it
            one = await admin.get(f"{LIST}/{item['profile_id']}")
            assert item == one.json()
    ada = (await _page(admin, email="ada@example.org"))["items"][1]
    assert ada["email"] == "Ada@example.org" and ada["email_opt_out"] is True
    assert ada["mobilePhone"] == "+33612345678" and ada["attributes"] == {"tier": "gold"}

    # A + of the local part, encoded (httpx sends %2B), is the address's own.
    assert _ids(await _page(admin, email="Ada+News@example.org")) == ["d-news"]
    # Sent as it is, it reads as a space: a 400 that says so.
    problem = assert_problem(await admin.get(LIST + "?email=ada+news@example.org"), 400, "email")
    assert "%2B" in problem["errors"][0]["detail"]
    # An address no profile has: an empty page.
    assert await _page(admin, email="nobody@example.org") == {"items": [], "next_cursor": None}


async def test_found_by_phone_as_profiles_store_it(server) -> None:
    admin = forbid_server_errors(server.admin)
    await put_profile(admin, "p2", mobilePhone="+14155552671", email="p2@example.org")
    await put_profile(admin, "p1", mobilePhone="+1 (415) 555-2671")
    await put_profile(admin, "p3", mobilePhone="+33612345678")
    await put_profile(admin, "p4", email="p4@example.org")

    for asked in ("+14155552671", "+1 415-555-2671", "+1 (415) 555.2671"):
        page = await _page(admin, mobile_phone=asked)
        assert _ids(page) == ["p1", "p2"], asked
        assert page["items"][1] == (await admin.get(f"{LIST}/p2")).json()
    assert _ids(await _page(admin, mobile_phone="+33 6 12 34 56 78")) == ["p3"]
    # Both filters: the profiles having both.
    both = await _page(admin, mobile_phone="+14155552671", email="P2@example.org")
    assert _ids(both) == ["p2"]
    # The + sent unencoded reads as a space: a 400 that says so.
    problem = assert_problem(
        await admin.get(LIST + "?mobile_phone=+14155552671"), 400, "mobile_phone"
    )
    assert "%2B" in problem["errors"][0]["detail"]
    # A number of E.164's shape that no country uses: refused as a PUT refuses it (422).
    assert_problem(await admin.get(LIST, params={"mobile_phone": "+1000000"}), 422, "mobile_phone")


async def test_pages_give_every_profile_once_in_order(server) -> None:
    admin = forbid_server_errors(server.admin)
    ids = [f"c-{n:02}" for n in range(1, 8)]
    shuffled = [ids[i] for i in (4, 0, 6, 2, 5, 1, 3)]  # created out of order
    await _import(
        admin, [{"profile_id": i, "email": f"{i}@example.org", "language": "en"} for i in shuffled]
    )

    pages = await _walk(admin, limit=3)
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]  # three pages, the last one without a cursor
    # A page that ends the list exactly has no next page.
    assert await _walk(admin, limit=7) == [ids]
    assert await _walk(admin, limit=6) == [ids[:6], ids[6:]]
    # The default limit (100) holds them all; the limit may change along the walk.
    assert await _walk(admin) == [ids]
    first = await _page(admin, limit=2)
    rest = await _page(admin, limit=1000, cursor=first["next_cursor"])
    assert _ids(first) + _ids(rest) == ids and rest["next_cursor"] is None
    # Items as GET answers them.
    one = (await admin.get(f"{LIST}/c-01")).json()
    assert first["items"][0] == one


async def test_a_profile_deleted_between_pages_breaks_nothing(server) -> None:
    admin = forbid_server_errors(server.admin)
    for n in range(1, 8):
        await put_profile(admin, f"c-{n:02}", first_name=f"N{n}")
    first = await _page(admin, limit=2)
    assert _ids(first) == ["c-01", "c-02"]
    # The profile the cursor names, and the one that would have come next, are erased.
    for gone in ("c-02", "c-03"):
        assert (await admin.delete(f"{LIST}/{gone}")).status_code == 204
    # Created meanwhile: one sorting before the walk's place (not seen), one after (seen).
    await put_profile(admin, "c-00", first_name="early")
    await put_profile(admin, "c-99", first_name="late")
    second = await _page(admin, limit=2, cursor=first["next_cursor"])
    assert _ids(second) == ["c-04", "c-05"]
    assert (await admin.delete(f"{LIST}/c-05")).status_code == 204  # the new cursor's own
    third = await _page(admin, limit=2, cursor=second["next_cursor"])
    assert _ids(third) == ["c-06", "c-07"]
    last = await _page(admin, limit=2, cursor=third["next_cursor"])
    assert _ids(last) == ["c-99"] and last["next_cursor"] is None
    # Everything deleted after a cursor was given: an empty last page, not an error.
    for gone in ("c-06", "c-07", "c-99"):
        assert (await admin.delete(f"{LIST}/{gone}")).status_code == 204
    assert await _page(admin, limit=2, cursor=second["next_cursor"]) == {
        "items": [],
        "next_cursor": None,
    }


async def test_updated_since_keeps_the_profiles_written_since(server) -> None:
    admin = forbid_server_errors(server.admin)
    for profile_id in ("a", "b", "d"):
        await put_profile(admin, profile_id, email=f"{profile_id}@example.org")
    await asyncio.sleep(0.05)
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await put_profile(admin, "b", email="b@example.org", first_name="changed")
    await put_profile(admin, "c", email="c@example.org")
    await _import(admin, [{"profile_id": "e", "email": "e@example.org"}])

    assert _ids(await _page(admin, updated_since=since.isoformat())) == ["b", "c", "e"]
    # The same instant in another offset (sent encoded: %2B), or zone-less (read as UTC).
    plus_two = since.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert plus_two.endswith("+02:00")
    assert _ids(await _page(admin, updated_since=plus_two)) == ["b", "c", "e"]
    naive = since.replace(tzinfo=None).isoformat()
    assert _ids(await _page(admin, updated_since=naive)) == ["b", "c", "e"]
    # With paging and another filter.
    assert await _walk(admin, updated_since=since.isoformat(), limit=2) == [["b", "c"], ["e"]]
    b_since = await _page(admin, updated_since=since.isoformat(), email="B@example.org")
    assert _ids(b_since) == ["b"]
    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    assert _ids(await _page(admin, updated_since=later)) == []


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


async def test_bad_parameters_are_a_400_naming_them(server) -> None:
    admin = forbid_server_errors(server.admin)
    await put_profile(admin, "c-01", email="ada@example.org")
    await put_profile(admin, "c-02", email="ada@example.org")
    bad: list[tuple[str, list[tuple[str, str]]]] = [
        ("email", [("email", "nope")]),
        ("email", [("email", "")]),
        ("email", [("email", "ada@")]),
        ("email", [("email", "a" * 321)]),
        ("email", [("email", "ada@example.org"), ("email", "bob@example.org")]),
        ("mobile_phone", [("mobile_phone", "12")]),
        ("mobile_phone", [("mobile_phone", "abc")]),
        ("mobile_phone", [("mobile_phone", "")]),
        ("mobile_phone", [("mobile_phone", "0612345678")]),  # national: which country?
        ("mobile_phone", [("mobile_phone", "x" * 65)]),
        ("mobile_phone", [("mobile_phone", "+1415555267\u0000")]),
        ("updated_since", [("updated_since", "yesterday")]),
        ("updated_since", [("updated_since", "")]),
        ("updated_since", [("updated_since", "2026-13-01")]),
        ("updated_since", [("updated_since", "1999-12-31T23:59:59Z")]),
        ("updated_since", [("updated_since", "9999-01-01T00:00:00Z")]),
        ("limit", [("limit", "0")]),
        ("limit", [("limit", "1001")]),
        ("limit", [("limit", "-1")]),
        ("limit", [("limit", "")]),
        ("limit", [("limit", "ten")]),
        ("limit", [("limit", "1.5")]),
        ("limit", [("limit", ARABIC_THREE)]),
        ("limit", [("limit", "9" * 5000)]),
        ("limit", [("limit", "2"), ("limit", "3")]),
        ("cursor", [("cursor", "")]),
        ("cursor", [("cursor", "!!!")]),
        ("cursor", [("cursor", "abcde")]),  # not base64 (length 1 mod 4)
        ("cursor", [("cursor", "a" * 201)]),
        ("cursor", [("cursor", _b64("hello"))]),
        ("cursor", [("cursor", _b64("p1.c-01"))]),  # no digest
        ("cursor", [("cursor", _b64("p1.bad id.0123456789abcdef"))]),
        ("cursor", [("cursor", _b64("p2.c-01.0123456789abcdef"))]),
        ("cursor", [("cursor", _b64("1.1700000000000000.12.0123456789abcdef"))]),  # an events'
        ("cursor", [("cursor", "\u0661\u0662")]),
    ]
    for field, params in bad:
        r = await admin.get(LIST, params=params)
        assert_problem(r, 400, field)
        assert "pointer" not in r.json()["errors"][0], r.text  # a query parameter, not the body

    # Another listing's cursor (other filters), or a forged one of the right shape: a 422.
    cursor = (await _page(admin, limit=1))["next_cursor"]
    assert cursor is not None
    for params in ({"email": "ada@example.org"}, {"updated_since": "2001-01-01T00:00:00Z"}):
        assert_problem(await admin.get(LIST, params={"cursor": cursor, **params}), 422, "cursor")
    forged = _b64("p1.c-01.0123456789abcdef")
    assert_problem(await admin.get(LIST, params={"cursor": forged}), 422, "cursor")
    # The same filters spelled another way are the same listing: the cursor goes on.
    cursor = (await _page(admin, email="ada@example.org", limit=1))["next_cursor"]
    page = await _page(admin, email="ADA@Example.org", limit=1, cursor=cursor)
    assert _ids(page) == ["c-02"]


async def test_only_admin_keys_list_profiles(server) -> None:
    await put_profile(server.admin, "c-01", email="ada@example.org")
    for role in ("trigger", "marketer"):
        async with server.client(await create_key(server.admin, role)) as client:
            for params in ({}, {"email": "ada@example.org"}, {"limit": "0"}):
                listing = assert_problem(await client.get(LIST, params=params), 403)
                one = assert_problem(await client.get(f"{LIST}/c-01"), 403)
                assert listing["detail"] == one["detail"]  # refused as GET of one is
    async with server.client() as anonymous:
        assert_problem(await anonymous.get(LIST), 401)
    async with server.client("not-a-key") as wrong:
        assert_problem(await wrong.get(LIST), 401)
