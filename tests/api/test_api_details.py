"""Details of the API contract: formats, pointers, scoping, defaults."""

from __future__ import annotations

import re

from helpers import create_channel, live_event, trigger
from txmsg.core.errors import FieldError, json_pointer, pointer_of

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_json_pointers_follow_rfc_6901() -> None:
    assert json_pointer("fields[0].name") == "/fields/0/name"
    assert json_pointer("ctx.firstName") == "/ctx/firstName"
    assert json_pointer("body") == ""
    assert json_pointer("smtp.a/b~c") == "/smtp/a~1b~0c"
    assert "pointer" not in FieldError("Idempotency-Key", "x", in_header=True).as_dict()
    # Given where the name is ambiguous (a key holding a dot): the given one.
    assert FieldError("ctx.a.b", "x", pointer="/ctx/a.b").as_dict()["pointer"] == "/ctx/a.b"
    assert pointer_of(["events", 3, "a/b"]) == "/events/3/a~1b"


async def test_every_date_time_has_one_format(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.get(f"/api/v1/event-configs/{event_id}")
    body = r.json()
    for key in ("created_at", "updated_at", "published_at"):
        assert ISO_Z.match(body[key]), (key, body[key])
    accepted = await trigger(server.admin, event_id)
    for key in ("eventDate", "expiration"):
        assert ISO_Z.match(accepted[key]), (key, accepted[key])


async def test_bad_field_error_points_into_the_body(server, smtp) -> None:
    await create_channel(server.admin, smtp)
    r = await server.admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "x",
            "channel": "email",
            "channel_config": "mail",
            "fields": [{"name": "a", "type": "date"}],
        },
    )
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["field"] == "fields[0].type"
    assert error["pointer"] == "/fields/0/type"


async def test_idempotency_keys_are_scoped_to_the_api_key(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    clients = []
    for label in ("site-a", "site-b"):
        r = await server.admin.post("/api/v1/keys", json={"role": "trigger", "label": label})
        clients.append(server.client(r.json()["key"]))
    body = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    headers = {"Idempotency-Key": "order-42"}
    first = await trigger(clients[0], event_id, body, headers=headers)
    second = await trigger(clients[1], event_id, body, headers=headers)
    assert first["PKey"] != second["PKey"]
    replay = await clients[0].post(f"/rest/mc/{event_id}", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json()["PKey"] == first["PKey"]
    await smtp.wait_for(2)
    bad = await clients[0].post(f"/rest/mc/{event_id}", json=body, headers={"Idempotency-Key": ""})
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {"field": "Idempotency-Key", "detail": "must be 1 to 255 characters"}
    ]


async def test_changing_tls_rederives_the_default_port(server, smtp) -> None:
    created = await create_channel(server.admin, smtp)
    assert created["smtp"]["port"] == smtp.port
    r = await server.admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"tls": "tls"}})
    assert r.status_code == 200, r.text
    assert r.json()["smtp"]["port"] == 465
    r = await server.admin.patch(
        "/api/v1/channel-configs/mail", json={"smtp": {"tls": "starttls", "port": 2525}}
    )
    assert r.json()["smtp"]["port"] == 2525


async def test_patch_accepts_the_event_id_in_its_create_form(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    assert event_id == "EVTcartAbandonment"
    r = await server.admin.patch(
        f"/api/v1/event-configs/{event_id}", json={"eventId": "cartAbandonment", "label": "Renamed"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "Renamed"
    r = await server.admin.patch(f"/api/v1/event-configs/{event_id}", json={"eventId": "other"})
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "eventId"


async def test_a_trailing_slash_is_an_unknown_path_not_a_redirect(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    body = {"email": "a@example.org", "ctx": {"firstName": "A"}}
    accepted = (await server.admin.post(f"/rest/mc/{event_id}", json=body)).json()
    evil = {"host": "evil.example"}
    for method, path in (
        ("POST", f"/rest/mc/{event_id}/"),
        ("POST", f"/rest/mc/{event_id}/batch/"),
        ("GET", accepted["href"] + "/"),
        ("GET", "/api/v1/event-configs/"),
    ):
        r = await server.admin.request(method, path, json=body, headers=evil)
        assert r.status_code == 404, (path, r.status_code)
        assert "location" not in r.headers
        assert r.headers["content-type"] == "application/problem+json"
