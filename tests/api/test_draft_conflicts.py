"""Optimistic concurrency on a message's draft: the ETag of GET and PUT, If-Match, 412.

Two marketers (or two console tabs) saving the same draft must not overwrite each other
silently: a save made from a draft that changed since is refused. A save without If-Match
(scripts, API clients) replaces the draft as before."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from helpers import assert_problem, live_event
from txmsg.testing import FakeSMTPServer

DRAFT = {
    "subject": "Hello {{ ctx.firstName }}",
    "html": "<p>Hi {{ ctx.firstName }}</p>",
    "text": "Hi {{ ctx.firstName }}",
}


async def _read(client: httpx.AsyncClient, event_id: str) -> tuple[dict[str, Any], str]:
    r = await client.get(f"/api/v1/messages/{event_id}")
    assert r.status_code == 200, r.text
    return r.json(), r.headers["ETag"]


async def _put(
    client: httpx.AsyncClient, event_id: str, body: dict[str, Any], if_match: str | None = None
) -> httpx.Response:
    headers = {"If-Match": if_match} if if_match is not None else {}
    return await client.put(f"/api/v1/messages/{event_id}/draft", json=body, headers=headers)


async def test_a_save_from_a_draft_changed_since_is_refused(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await live_event(server.admin, smtp, "etagDemo")
    _, tag = await _read(server.admin, event_id)
    assert tag.startswith('"') and tag.endswith('"') and len(tag) > 2  # strong: no W/
    assert (await _read(server.admin, event_id))[1] == tag  # reading moves nothing

    # Tab A saves from the tag it read: the answer carries the new draft's tag.
    first = await _put(server.admin, event_id, {**DRAFT, "subject": "From A"}, tag)
    assert first.status_code == 200, first.text
    moved = first.headers["ETag"]
    assert moved != tag and (await _read(server.admin, event_id))[1] == moved

    # Tab B still holds the first tag: refused, and A's subject stays.
    second = await _put(server.admin, event_id, {**DRAFT, "html": "<p>From B</p>"}, tag)
    problem = assert_problem(second, 412)
    assert "changed" in problem["detail"], problem
    stored, now = await _read(server.admin, event_id)
    assert now == moved
    assert stored["draft"]["subject"] == "From A"
    assert stored["draft"]["html"] == DRAFT["html"]

    # Strong comparison (a weak tag never matches); a list, and `*`, as RFC 9110 has them.
    weak = await _put(server.admin, event_id, DRAFT, "W/" + moved)
    assert_problem(weak, 412)
    listed = await _put(server.admin, event_id, {**DRAFT, "subject": "Listed"}, f"{tag}, {moved}")
    assert listed.status_code == 200, listed.text
    anything = await _put(server.admin, event_id, {**DRAFT, "subject": "Any"}, "*")
    assert anything.status_code == 200, anything.text

    # The sample is part of what the tag covers: changing it alone moves the tag.
    sampled = await _put(server.admin, event_id, {**DRAFT, "sample_ctx": {"firstName": "Sam"}})
    assert sampled.status_code == 200, sampled.text
    assert sampled.headers["ETag"] != anything.headers["ETag"]


async def test_a_save_without_if_match_still_replaces_the_draft(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await live_event(server.admin, smtp, "scriptDemo")
    _, tag = await _read(server.admin, event_id)
    moved = await _put(server.admin, event_id, {**DRAFT, "subject": "Moved"}, tag)
    assert moved.status_code == 200, moved.text
    script = await _put(server.admin, event_id, {**DRAFT, "subject": "From a script"})
    assert script.status_code == 200, script.text
    assert script.json()["draft"]["subject"] == "From a script"
    assert script.headers["ETag"] == (await _read(server.admin, event_id))[1]


async def test_two_saves_from_one_tag_cannot_both_succeed(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await live_event(server.admin, smtp, "raceDemo")
    for round_ in range(4):
        _, tag = await _read(server.admin, event_id)
        subjects = [f"Round {round_} from A", f"Round {round_} from B"]
        answers = await asyncio.gather(
            *(_put(server.admin, event_id, {**DRAFT, "subject": s}, tag) for s in subjects)
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 412], [r.text for r in answers]
        won = next(r for r in answers if r.status_code == 200)
        stored, now = await _read(server.admin, event_id)
        assert stored["draft"]["subject"] == won.json()["draft"]["subject"]
        assert now == won.headers["ETag"]


async def test_variants_added_since_are_not_put_back_by_a_stale_save(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """An editor opened before the variants changed sends the variants it loaded: its save is
    refused rather than removing the variant added since."""
    event_id = await live_event(server.admin, smtp, "variantDemo")
    loaded, tag = await _read(server.admin, event_id)
    french = {"subject": "Bonjour", "html": "<p>Salut</p>", "text": "Salut"}
    added = await _put(server.admin, event_id, {**DRAFT, "variants": {"fr": french}})
    assert added.status_code == 200, added.text
    stale_body = {k: loaded["draft"][k] for k in DRAFT} | {"subject": "Typed"}
    if loaded["draft"].get("variants"):
        stale_body["variants"] = loaded["draft"]["variants"]
    assert_problem(await _put(server.admin, event_id, stale_body, tag), 412)
    stored, _ = await _read(server.admin, event_id)
    assert stored["draft"]["variants"] == {"fr": french}
    assert stored["draft"]["subject"] == DRAFT["subject"]
