"""Bad input gets an application/problem+json answer naming what is wrong, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import RunningServer, settings_for
from helpers import (
    assert_problem,
    create_channel,
    create_event,
    forbid_server_errors,
    live_event,
    publish_message,
    trigger,
)
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


@pytest.fixture
def admin(server):
    return forbid_server_errors(server.admin)


async def test_trigger_body_errors_name_the_field(server, admin, smtp: FakeSMTPServer) -> None:
    event_id = await live_event(admin, smtp)
    url = f"/rest/mc/{event_id}"

    async def bad(body: Any, field: str | None, status: int = 400) -> dict[str, Any]:
        r = await admin.post(url, json=body)
        return assert_problem(r, status, field)

    # The spec allows any ctx object; the event's declared fields refuse these: 422.
    problem = await bad({"email": "ada@example.org", "ctx": {}}, "ctx.firstName", 422)
    assert problem["errors"][0]["detail"] == "is required"
    assert problem["errors"][0]["pointer"] == "/ctx/firstName"
    await bad({"email": "ada@example.org"}, "ctx.firstName", 422)  # no ctx at all
    body = {"email": "ada@example.org", "ctx": {"firstName": 42}}
    problem = await bad(body, "ctx.firstName", 422)
    assert "string" in problem["errors"][0]["detail"]
    await bad({**ADA, "ctx": {"firstName": "Ada", "amount": "many"}}, "ctx.amount", 422)
    # Every wrong field is reported, not just the first.
    problem = await bad({"email": "a@example.org", "ctx": {"amount": "x"}}, "ctx.amount", 422)
    assert {e["field"] for e in problem["errors"]} == {"ctx.amount", "ctx.firstName"}
    await bad({"email": "ada@example.org", "ctx": "Ada"}, "ctx")
    await bad({"email": "ada@example.org", "ctx": ["Ada"]}, "ctx")
    await bad({"email": "not-an-address", "ctx": {"firstName": "Ada"}}, "email")
    await bad({"email": 12, "ctx": {"firstName": "Ada"}}, "email")
    await bad({"ctx": {"firstName": "Ada"}}, "email")  # target "event" needs the address
    await bad({**ADA, "PKey": "mine"}, "PKey")  # unknown top-level field
    await bad({**ADA, "scheduled": "tomorrow"}, "scheduled")
    await bad({**ADA, "scheduled": "2030-13-45T10:00:00Z"}, "scheduled")
    await bad({**ADA, "expiration": "2030/01/01"}, "expiration")
    await bad({**ADA, "expiration": 1735689600}, "expiration")
    await bad(
        {**ADA, "scheduled": "2030-01-02T10:00:00Z", "expiration": "2030-01-01T10:00:00Z"},
        "expiration",
    )
    await bad([ADA], "body")  # not an object
    await bad("hello", "body")
    await bad(None, None)  # JSON null

    # Not JSON at all, or no body.
    for raw in (b'{"email": "ada@example.org", "ctx": {', b"email=ada", b"\xff\xfe", b""):
        r = await admin.post(url, content=raw, headers={"content-type": "application/json"})
        problem = assert_problem(r, 400)
        assert "JSON" in problem["detail"]

    # Nothing of the above was accepted: a good trigger still works.
    accepted = await trigger(admin, event_id, ADA)
    assert accepted["status"] == "pending"


async def test_a_body_not_in_utf8_is_a_problem_naming_body(
    server, admin, smtp: FakeSMTPServer
) -> None:
    """JSON is UTF-8 whatever the Content-Type's charset says: Latin-1 or UTF-16 bodies are
    refused naming `body` and the encoding wanted, as a single trigger, a batch or an admin
    request; nothing is stored."""
    event_id = await live_event(admin, smtp)
    zoe = '{"email": "zoe@example.org", "ctx": {"firstName": "Zoë"}}'
    for raw, charset, where in (
        (zoe.encode("latin-1"), "latin-1", "byte 53 is not UTF-8"),
        (zoe.encode("utf-16"), "utf-16", "byte 0 is not UTF-8"),  # its byte order mark
        (zoe.encode("utf-16-le"), "utf-16", "byte 1 is a NUL"),
        (zoe.encode("utf-32-be"), "utf-32", "byte 0 is a NUL"),
    ):
        headers = {"content-type": f"application/json; charset={charset}"}
        batch = ('{"events": [' + zoe + "]}").encode(charset.replace("utf-16", "utf-16-le"))
        for url, body in (
            (f"/rest/mc/{event_id}", raw),
            (f"/rest/mc/{event_id}/batch", batch),
            ("/api/v1/channel-configs", raw),
        ):
            problem = assert_problem(await admin.post(url, content=body, headers=headers), 400)
            assert [e["field"] for e in problem["errors"]] == ["body"], problem
            detail = problem["errors"][0]["detail"]
            assert detail.startswith("must be JSON encoded in UTF-8 (RFC 8259)"), problem
            if body is raw:
                assert where in detail, (charset, problem)
    r = await admin.get(f"/api/v1/events/{event_id}")
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    # The same body in UTF-8 is accepted, whatever charset its header names.
    r = await admin.post(
        f"/rest/mc/{event_id}",
        content=zoe.encode(),
        headers={"content-type": "application/json; charset=latin-1"},
    )
    assert r.status_code == 201 and r.json()["ctx"] == {"firstName": "Zoë"}, r.text


async def test_unknown_things_are_404_and_wrong_methods_405(
    server, admin, smtp: FakeSMTPServer
) -> None:
    await create_channel(admin, smtp)
    assert_problem(await admin.post("/rest/mc/EVTnoSuchEvent", json=ADA), 404)
    await create_event(admin, "draftOnly")
    problem = assert_problem(await admin.post("/rest/mc/EVTdraftOnly", json=ADA), 404)
    assert "EVTdraftOnly" in problem["detail"]
    # A draft event has no message yet.
    for r in (
        await admin.get("/api/v1/messages/EVTdraftOnly"),
        await admin.post("/api/v1/messages/EVTdraftOnly/preview", json={}),
        await admin.post("/api/v1/messages/EVTdraftOnly/publish"),
        await admin.get("/api/v1/messages/EVTunknown"),
    ):
        assert_problem(r, 404)
    # Without the EVT prefix the event is not found either.
    await create_event(admin, "gone")
    r = await admin.post("/api/v1/event-configs/EVTgone/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, "EVTgone")
    gone = await trigger(admin, "EVTgone", ADA)
    assert_problem(await admin.post("/rest/mc/gone", json=ADA), 404)
    r = await admin.post("/api/v1/event-configs/EVTgone/unpublish")
    assert r.status_code == 200, r.text
    assert_problem(await admin.post("/rest/mc/EVTgone", json=ADA), 404)
    # Status of an unknown PKey, or of a known PKey under another event.
    assert_problem(await admin.get("/rest/mc/EVTgone/NOPE"), 404)
    assert_problem(await admin.get(f"/rest/mc/EVTdraftOnly/{gone['PKey']}"), 404)
    r = await admin.get(gone["href"])  # its own status is still there
    assert r.status_code == 200, r.text
    # Unknown routes and methods answer problems too.
    r = await admin.get("/api/v1/nothing-here")
    assert_problem(r, 404)
    r = await admin.get("/rest/mc")
    assert_problem(r, 404)
    r = await admin.delete("/api/v1/channel-configs")
    assert_problem(r, 405)
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = await admin.put("/api/v1/event-configs/EVTx")
    assert_problem(r, 405)
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}
    r = await admin.put("/rest/mc/EVTsomething")
    assert_problem(r, 405)
    assert "POST" in r.headers["allow"]


async def test_body_over_the_limit_is_413(database_url, data_dir, smtp: FakeSMTPServer) -> None:
    settings = settings_for(database_url, data_dir, max_body_bytes=400)
    async with RunningServer(settings) as running:
        admin = forbid_server_errors(running.admin)
        event_id = await live_event(admin, smtp)
        big = {"email": "ada@example.org", "ctx": {"firstName": "A" * 500}}
        r = await admin.post(f"/rest/mc/{event_id}", json=big)
        problem = assert_problem(r, 413)
        assert "400" in problem["detail"]

        # Without a Content-Length (chunked), the limit holds while reading.
        async def chunks():
            for _ in range(10):
                yield b" " * 100

        r = await admin.post(
            f"/rest/mc/{event_id}", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(r, 413)
        # Other endpoints share the limit.
        r = await admin.put(
            f"/api/v1/messages/{event_id}/draft",
            json={"subject": "s", "html": "x" * 1000, "text": ""},
        )
        assert_problem(r, 413)
        # Under the limit it still works.
        accepted = await trigger(admin, event_id, ADA)
        assert accepted["status"] == "pending"


async def test_channel_config_errors(server, admin, smtp: FakeSMTPServer) -> None:
    good: dict[str, Any] = {
        "name": "mail",
        "channel": "email",
        "from_email": "shop@example.com",
        "smtp": {"host": smtp.host, "port": smtp.port, "tls": "none"},
    }
    url = "/api/v1/channel-configs"

    async def bad(body: Any, field: str | None, status: int = 400) -> dict[str, Any]:
        return assert_problem(await admin.post(url, json=body), status, field)

    await bad({**good, "smtp": {"port": 25}}, "smtp.host")
    await bad({k: v for k, v in good.items() if k != "smtp"}, "smtp")
    await bad({**good, "smtp": {**good["smtp"], "tls": "ssl"}}, "smtp.tls")
    await bad({**good, "smtp": {**good["smtp"], "port": 70000}}, "smtp.port")
    await bad({**good, "smtp": {**good["smtp"], "port": "25"}}, "smtp.port")
    await bad({**good, "smtp": {**good["smtp"], "verify": False}}, "smtp.verify")
    await bad({**good, "smtp": "localhost:25"}, "smtp")
    await bad({**good, "from_email": "shop"}, "from_email")
    await bad({**good, "from_email": None}, "from_email")
    await bad({**good, "reply_to": "@example.com"}, "reply_to")
    await bad({**good, "name": "has space"}, "name")
    await bad({**good, "channel": "pigeon"}, "channel")
    await bad({**good, "message_export": "yes"}, "message_export")
    await bad({**good, "colour": "blue"}, "colour")
    await bad([good], "body")

    r = await admin.post(url, json=good)
    assert r.status_code == 201, r.text
    assert_problem(await admin.post(url, json=good), 409)  # the name is taken
    r = await admin.patch(f"{url}/mail", json={"smtp": {"tls": "bogus"}})
    assert_problem(r, 400, "smtp.tls")
    r = await admin.patch(f"{url}/mail", json={"name": "other"})
    assert_problem(r, 400, "name")
    r = await admin.patch(f"{url}/mail", json={"from_email": "nope"})
    assert_problem(r, 400, "from_email")
    assert_problem(await admin.patch(f"{url}/nope", json={"from_name": "x"}), 404)
    assert_problem(await admin.get(f"{url}/nope"), 404)
    # The refused PATCHes changed nothing.
    r = await admin.get(f"{url}/mail")
    assert r.json()["smtp"]["tls"] == "none"
    assert r.json()["from_email"] == "shop@example.com"


async def test_event_config_errors(server, admin, smtp: FakeSMTPServer) -> None:
    await create_channel(admin, smtp)
    url = "/api/v1/event-configs"
    good: dict[str, Any] = {
        "eventId": "orderShipped",
        "channel": "email",
        "channel_config": "mail",
        "fields": [{"name": "firstName", "type": "string", "required": True}],
    }

    async def bad(body: Any, field: str | None, status: int = 400) -> dict[str, Any]:
        return assert_problem(await admin.post(url, json=body), status, field)

    # 61 characters + EVT = 64 is the longest eventId.
    await bad({**good, "eventId": "a" * 62}, "eventId")
    await bad({**good, "eventId": "EVT" + "a" * 62}, "eventId")
    await bad({**good, "eventId": "order-shipped"}, "eventId")
    await bad({**good, "eventId": ""}, "eventId")
    await bad({**good, "fields": [{"name": "n", "type": "date"}]}, "fields[0].type")
    await bad({**good, "fields": [{"name": "n"}]}, "fields[0].type")
    await bad({**good, "fields": [{"name": "1n", "type": "string"}]}, "fields[0].name")
    await bad(
        {**good, "fields": [{"name": "n", "type": "string"}, {"name": "n", "type": "number"}]},
        "fields[1].name",
        422,  # unique names: a rule JSON Schema cannot state
    )
    await bad(
        {**good, "fields": [{"name": "n", "type": "string", "required": "yes"}]},
        "fields[0].required",
    )
    await bad({**good, "fields": {"n": "string"}}, "fields")
    await bad({**good, "channel_config": "nope"}, "channel_config", 422)  # a name, of nothing
    await bad({**good, "channel_config": None}, "channel_config")
    await bad({**good, "channel": "fax"}, "channel")
    await bad({**good, "target": "everyone"}, "target")
    await bad({**good, "template": "no_such_template"}, "template")
    await bad({**good, "color": "red"}, "color")

    r = await admin.post(url, json={**good, "eventId": "a" * 61})
    assert r.status_code == 201, r.text
    assert r.json()["eventId"] == "EVT" + "a" * 61
    created = await create_event(admin, "orderShipped")
    event_id = created["eventId"]
    assert_problem(await admin.post(url, json=good), 409)  # exists

    # channel, target and eventId cannot change; fields of a live event neither.
    item = f"{url}/{event_id}"
    assert_problem(await admin.patch(item, json={"channel": "sms"}), 409, "channel")
    assert_problem(await admin.patch(item, json={"target": "profile"}), 409, "target")
    assert_problem(await admin.patch(item, json={"target": "everyone"}), 400, "target")
    assert_problem(await admin.patch(item, json={"eventId": "EVTother"}), 409, "eventId")
    assert_problem(await admin.patch(item, json={"eventId": "no-id"}), 400, "eventId")
    assert_problem(await admin.patch(item, json={"state": "published"}), 400, "state")
    assert_problem(await admin.patch(item, json={"channel_config": "nope"}), 422, "channel_config")
    assert_problem(await admin.patch(f"{url}/EVTnope", json={"label": "x"}), 404)

    # Lifecycle: only legal transitions.
    for action in ("pause", "resume", "unpublish"):
        problem = assert_problem(await admin.post(f"{item}/{action}"), 409)
        assert "draft" in problem["detail"]
    r = await admin.post(f"{item}/publish")
    assert r.status_code == 200, r.text
    assert_problem(await admin.post(f"{item}/publish"), 409)
    assert_problem(await admin.post(f"{item}/resume"), 409)
    new_fields = [{"name": "x", "type": "string"}]
    assert_problem(await admin.patch(item, json={"fields": new_fields}), 409)
    assert_problem(await admin.delete(item), 409)  # only drafts can be deleted
    r = await admin.post(f"{item}/pause")
    assert r.status_code == 200, r.text
    assert_problem(await admin.post(f"{item}/pause"), 409)
    assert_problem(await admin.delete(item), 409)
    r = await admin.post(f"{item}/unpublish")
    assert r.status_code == 200, r.text
    assert_problem(await admin.post(f"{item}/pause"), 409)
    assert_problem(await admin.post(f"{item}/unpublish"), 409)
    assert_problem(await admin.delete(item), 409)
    assert_problem(await admin.post(f"{url}/EVTnope/publish"), 404)
    r = await admin.get(item)
    assert r.json()["state"] == "unpublished"
    assert r.json()["fields"] == [
        {"name": "firstName", "type": "string", "required": True},
        {"name": "amount", "type": "number", "required": False},
    ]


async def test_template_errors_name_part_and_line(server, admin, smtp: FakeSMTPServer) -> None:
    event_id = await live_event(admin, smtp)
    draft_url = f"/api/v1/messages/{event_id}/draft"
    ok = {"subject": "Hi {{ ctx.firstName }}", "html": "<p>Hi</p>", "text": "Hi"}

    # Syntax errors are refused when the draft is saved.
    r = await admin.put(draft_url, json={**ok, "html": "<p>Hello</p>\n<p>{{ ctx.firstName </p>\n"})
    problem = assert_problem(r, 422, "html")
    assert "line 2" in problem["errors"][0]["detail"]
    r = await admin.put(draft_url, json={**ok, "text": "a\nb\n{% if ctx.firstName %}\nno end"})
    problem = assert_problem(r, 422, "text")
    assert "line" in problem["errors"][0]["detail"]
    r = await admin.put(draft_url, json={**ok, "subject": "Hi {{ }}"})
    assert_problem(r, 422, "subject")
    # Other draft errors.
    # Which parts a draft needs is its event's channel's rule: a 422.
    assert_problem(await admin.put(draft_url, json={**ok, "subject": ""}), 422, "subject")
    assert_problem(await admin.put(draft_url, json={**ok, "html": "", "text": ""}), 422, "html")
    assert_problem(await admin.put(draft_url, json={**ok, "body": "x"}), 422, "body")
    assert_problem(await admin.put(draft_url, json={**ok, "html": 5}), 400, "html")
    assert_problem(await admin.put(draft_url, json={**ok, "sample_ctx": [1]}), 400, "sample_ctx")
    assert_problem(await admin.put("/api/v1/messages/EVTnope/draft", json=ok), 404)

    # Undefined variables are found when rendering: preview and publish say where.
    undefined = {**ok, "html": "<p>Hi {{ ctx.firstName }}</p>\n\n<p>{{ ctx.nickname }}</p>"}
    r = await admin.put(draft_url, json=undefined)
    assert r.status_code == 200, r.text
    preview_url = f"/api/v1/messages/{event_id}/preview"
    r = await admin.post(preview_url, json={"ctx": {"firstName": "Ada"}})
    problem = assert_problem(r, 422, "html")
    detail = problem["errors"][0]["detail"]
    assert "line 3" in detail and "nickname" in detail, detail
    problem = assert_problem(await admin.post(f"/api/v1/messages/{event_id}/publish"), 422, "html")
    assert "line 3" in problem["errors"][0]["detail"]
    # Preview checks the ctx it is given against the event's fields.
    r = await admin.post(preview_url, json={"ctx": {"firstName": 1}})
    assert_problem(r, 422, "ctx.firstName")  # the event's declared fields refuse it
    assert_problem(await admin.post(preview_url, json={"ctx": "x"}), 400, "ctx")
    assert_problem(await admin.post(preview_url, json={"context": {}}), 400, "context")

    # The sandbox refuses to reach Python internals.
    for source in (
        "{{ ctx.__class__ }}",
        "{{ ctx.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ctx.firstName.__len__() }}",
        "{{ ctx.update({'a': 1}) }}",
    ):
        r = await admin.put(draft_url, json={**ok, "text": source})
        assert r.status_code == 200, r.text
        r = await admin.post(preview_url, json={"ctx": {"firstName": "Ada"}})
        problem = assert_problem(r, 422, "text")
        assert "line 1" in problem["errors"][0]["detail"], problem
        assert "object at 0x" not in r.text and "<class" not in r.text

    # The published version (v1 from live_event) is untouched by all this.
    r = await admin.get(f"/api/v1/messages/{event_id}")
    assert r.json()["published"]["version"] == 1
    assert [v["version"] for v in r.json()["versions"]] == [1]
    accepted = await trigger(admin, event_id, ADA)
    assert accepted["status"] == "pending"
