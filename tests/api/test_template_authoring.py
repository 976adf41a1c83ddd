"""Template authoring over HTTP: warnings on save, refusal at publish, the dry run, and an
optional field left out by a trigger."""

from __future__ import annotations

from typing import Any

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    create_key,
    forbid_server_errors,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer

FIELDS = [
    {"name": "firstName", "type": "string", "required": True},
    {"name": "lastProduct", "type": "string", "required": False},
]


async def _event(server: Any, smtp: FakeSMTPServer) -> str:
    await create_channel(server.admin, smtp)
    event_id = (await create_event(server.admin, "optionals", fields=FIELDS))["eventId"]
    r = await server.admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text
    return str(event_id)


async def test_a_trigger_leaving_out_an_optional_field_is_sent(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _event(server, smtp)
    await publish_message(
        server.admin,
        event_id,
        subject="Hi {{ ctx.firstName }}",
        html="<p>[{{ ctx.lastProduct }}] {{ ctx.lastProduct | default('your cart') }}</p>",
        text="[{{ ctx.lastProduct }}]",
    )
    accepted = await trigger(server.admin, event_id)
    status = await wait_status(server.admin, accepted["href"], {"processed", "routingFailed"})
    assert status["status"] == "processed", status
    message = (await smtp.wait_for(1))[0]
    assert "<p>[] your cart</p>" in message.html
    assert message.text.strip() == "[]"


async def test_saving_warns_and_publishing_refuses_unknown_names(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _event(server, smtp)
    draft = {
        "subject": "Hi {{ ctx.firstName }}",
        "html": "<p>Hi</p>\n<p>{{ ctx.lastProdct }}</p>",
        "text": "{{ event.PKey }}",
    }
    r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200, r.text
    [warning] = r.json()["warnings"]
    assert warning == {
        "part": "html",
        "line": 2,
        "column": 7,
        "name": "ctx.lastProdct",
        "suggestion": "ctx.lastProduct",
        "detail": "line 2: `ctx.lastProdct` is not provided by this event: "
        "did you mean `ctx.lastProduct`?",
    }
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish")
    body = assert_problem(r, 422, "html")
    assert body["warnings"] == [warning]

    assert "did you mean `ctx.lastProduct`?" in body["detail"]
    r = await server.admin.get(f"/api/v1/messages/{event_id}")
    assert r.json()["published"] is None and r.json()["warnings"] == [warning]
    # Syntax errors are refused with their line when saving already.
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={**draft, "text": "a\n{% if %}"}
    )
    assert "line 2" in assert_problem(r, 422, "text")["detail"]


async def test_the_dry_run_renders_recent_payloads_and_shows_the_difference(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _event(server, smtp)
    published = await publish_message(
        server.admin, event_id, subject="Hi {{ ctx.firstName }}", html="", text="Hi"
    )
    for name in ("Ada", "Grace"):
        await trigger(
            server.admin, event_id, {"email": "a@example.org", "ctx": {"firstName": name}}
        )
    await trigger(
        server.admin,
        event_id,
        {"email": "a@example.org", "ctx": {"firstName": "Bo", "lastProduct": "tea"}},
    )
    draft = {
        "subject": "Hello {{ ctx.firstName }}",
        "text": "{{ ctx.lastProduct | default('none') }} {{ ctx.lastProduct.upper() }}",
    }
    r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200 and r.json()["warnings"] == [], r.text
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish?dry_run=true")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["events"], answer["rendered"]) == (3, 1), answer
    assert answer["published_version"] == published["version"]
    assert {f["part"] for f in answer["failed"]} == {"text"}
    assert all("lastProduct" in f["reason"] for f in answer["failed"]), answer["failed"]
    [sample] = answer["sample"]
    assert "-Hi Bo" in sample["diff"]["subject"] and "+Hello Bo" in sample["diff"]["subject"]
    # A marketer's run says which fail and why, and shows no sample: it could quote the
    # payloads, which are personal data (the latest events are an admin's to read).
    marketer = server.client(await create_key(server.admin, "marketer"))
    r = await marketer.post(f"/api/v1/messages/{event_id}/publish?dry_run=true")
    assert r.status_code == 200, r.text
    theirs = r.json()
    assert (theirs["events"], theirs["rendered"]) == (3, 1)
    assert theirs["failed"] == answer["failed"]
    assert theirs["sample"] == []
    # Nothing was published.
    r = await server.admin.get(f"/api/v1/messages/{event_id}")
    assert r.json()["published"]["version"] == published["version"]
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish?dry_run=maybe")
    assert_problem(r, 400, "dry_run")


async def test_a_marketers_dry_run_says_why_without_quoting_the_payloads(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Each failure has a reason, bounded in length; a marketer's says why only in the
    template's names and the engine's words: a reason that could carry a payload's value (as
    it is, lower-cased, sliced, a number) is not given to them."""
    event_id = await _event(server, smtp)
    await publish_message(server.admin, event_id, subject="Hi", html="", text="Hi")
    await trigger(
        server.admin, event_id, {"email": "a@example.org", "ctx": {"firstName": "Zanzibar"}}
    )
    draft = {"subject": "Hi", "text": "{{ {'known': 1}[ctx.firstName] }} {{ 1 / 0 }}"}
    r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200, r.text
    dry = f"/api/v1/messages/{event_id}/publish?dry_run=true"
    [admins] = (await server.admin.post(dry)).json()["failed"]
    assert "Zanzibar" in admins["reason"], admins
    marketer = server.client(await create_key(server.admin, "marketer"))
    [theirs] = (await marketer.post(dry)).json()["failed"]
    assert theirs["part"] == "text" and "Zanzibar" not in theirs["reason"], theirs
    unshown = "line 1: this event's data does not render (an admin's dry run shows the error)"
    assert theirs["reason"] == unshown, theirs

    # What a value becomes in the template is not shown either; the engine's words are.
    for text, hidden in [
        ("{% set m = {'a': 1} %}{{ m[ctx.firstName | lower] }}", "zanzibar"),
        ("{{ {'a': 1}[ctx.firstName[1:4]] }}", "anz"),
        ("{{ [1][ctx.firstName | length] }}", "8"),
    ]:
        draft["text"] = text
        r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
        assert r.status_code == 200, r.text
        [admins] = (await server.admin.post(dry)).json()["failed"]
        assert hidden in admins["reason"].lower(), admins
        [theirs] = (await marketer.post(dry)).json()["failed"]
        assert theirs["reason"] == unshown, (text, theirs)
    draft["text"] = "{{ ctx.firstName }} {{ 1 / 0 }}"
    r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200, r.text
    [theirs] = (await marketer.post(dry)).json()["failed"]
    assert theirs["reason"] == "line 1: division by zero", theirs

    # A long reason is cut short.
    draft["text"] = "{{ {}[ctx.firstName ~ '" + "y" * 500 + "'] }}"
    r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200, r.text
    [long] = (await server.admin.post(dry)).json()["failed"]
    assert len(long["reason"]) <= 300 and long["reason"].endswith("…"), long


async def test_a_published_version_can_be_read(server: Any, smtp: FakeSMTPServer) -> None:
    event_id = await _event(server, smtp)
    await publish_message(server.admin, event_id, subject="One {{ ctx.firstName }}")
    await publish_message(server.admin, event_id, subject="Two {{ ctx.firstName }}")
    r = await server.admin.get(f"/api/v1/messages/{event_id}/versions/1")
    assert r.status_code == 200 and r.json()["subject"] == "One {{ ctx.firstName }}", r.text
    assert_problem(await server.admin.get(f"/api/v1/messages/{event_id}/versions/9"), 404)
    assert_problem(await server.admin.get(f"/api/v1/messages/{event_id}/versions/x"), 400)


async def test_the_message_answers_the_sample_previews_use(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    fields = [
        {"name": "name", "type": "string"},
        {"name": "amount", "type": "number"},
        {"name": "count", "type": "integer"},
        {"name": "gift", "type": "boolean"},
    ]
    event_id = (await create_event(admin, "samples", fields=fields))["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text
    made = (await admin.get(f"/api/v1/messages/{event_id}")).json()["sample_ctx"]
    assert made == {"name": "sample name", "amount": 9.99, "count": 1, "gift": True}
    # The sample is valid for the event: a preview with it renders.
    r = await admin.post(f"/api/v1/messages/{event_id}/preview", json={"ctx": made})
    assert r.status_code == 200, r.text
    draft = {"subject": "Hi {{ ctx.name }}", "html": "<p>x</p>", "sample_ctx": {"amount": 2}}
    r = await admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
    assert r.status_code == 200, r.text
    saved = (await admin.get(f"/api/v1/messages/{event_id}")).json()["sample_ctx"]
    assert saved == {"amount": 2}


# Renders the templates' own evaluation cannot finish: each is its part's problem, with its
# line when known, at preview, at publish and at send (routingFailed), never a 500 nor a retry.
BAD_RENDERS = [
    ("text", "{{ '%c'|format(55296) }}", None, "renders U+D800, a lone surrogate"),
    ("subject", "{{ '%c'|format(56320) }}", None, "renders U+DC00, a lone surrogate"),
    ("text", "{{ ctx.firstName|truncate(2) }}", 2, "expected length >= 3"),
    ("html", "{{ ctx.firstName|truncate(9, leeway=-1) }}", 2, "expected leeway"),
    ("text", "{{ cycler().next() }}", 2, "at least one item"),
]


async def test_renders_that_fail_in_a_filter_or_make_no_text_name_their_part(
    server: Any, smtp: FakeSMTPServer
) -> None:
    admin = forbid_server_errors(server.admin)
    event_id = await _event(server, smtp)
    parts = {"subject": "Hi {{ ctx.firstName }}", "html": "<p>Hi</p>", "text": "Hi"}
    eve = {"firstName": "Eve"}
    for part, expression, line, reason in BAD_RENDERS:
        # Only Eve's render fails: with another sample the version publishes.
        source = f"{parts[part]}{{% if ctx.firstName == 'Eve' %}}\n{expression}{{% endif %}}"
        draft = {**parts, part: source, "sample_ctx": eve}
        r = await admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
        assert r.status_code == 200, r.text
        where = f"line {line}: " if line else ""
        for r in (
            await admin.post(f"/api/v1/messages/{event_id}/preview"),
            await admin.post(f"/api/v1/messages/{event_id}/publish"),
        ):
            error = assert_problem(r, 422, part)["errors"][0]
            assert error["field"] == part and error["detail"].startswith(where + reason), error
        draft["sample_ctx"] = {"firstName": "Ada"}
        r = await admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
        assert r.status_code == 200, r.text
        r = await admin.post(f"/api/v1/messages/{event_id}/publish")
        assert r.status_code == 201, r.text
        accepted = await trigger(admin, event_id, {"email": "eve@example.org", "ctx": eve})
        done = await wait_status(admin, accepted["href"], {"routingFailed", "processed"})
        assert done["status"] == "routingFailed", done
        assert f"for this event: {part}: {where}{reason}" in done["reason"], done
    assert smtp.messages == []


async def test_an_email_that_renders_no_body_is_not_sent(server: Any, smtp: FakeSMTPServer) -> None:
    event_id = await _event(server, smtp)
    blank = "{% if ctx.firstName != 'Eve' %}Hi {{ ctx.firstName }}{% endif %}\n"
    await publish_message(server.admin, event_id, subject="x", html=blank, text=blank)
    eve = await trigger(
        server.admin, event_id, {"email": "eve@example.org", "ctx": {"firstName": "Eve"}}
    )
    done = await wait_status(server.admin, eve["href"], {"routingFailed", "processed"})
    assert done["status"] == "routingFailed", done
    assert done["reason"].endswith("renders an empty html and text for this event"), done
    ada = await trigger(server.admin, event_id)
    await wait_status(server.admin, ada["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]


async def test_the_preview_warns_of_an_empty_body_or_subject(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """What the email leg would refuse (no html and no text: routingFailed) or send oddly (no
    subject) is said beside the preview, and in the dry run for the recent events it affects."""
    event_id = await _event(server, smtp)
    only_ada = "{% if ctx.firstName == 'Ada' %}{{ ctx.firstName }}{% endif %} \n"
    await publish_message(server.admin, event_id, subject=only_ada, html=only_ada, text="")
    eve = await trigger(
        server.admin, event_id, {"email": "eve@example.org", "ctx": {"firstName": "Eve"}}
    )
    done = await wait_status(server.admin, eve["href"], {"routingFailed", "processed"})
    assert done["status"] == "routingFailed", done
    marketer = server.client(await create_key(server.admin, "marketer"))
    preview = f"/api/v1/messages/{event_id}/preview"

    r = await marketer.post(preview, json={"ctx": {"firstName": "Eve"}})
    assert r.status_code == 200, r.text
    warnings = r.json()["render_warnings"]
    assert [(w["code"], w["part"], w["status"]) for w in warnings] == [
        ("empty_subject", "subject", None),
        ("empty_body", "html", "routingFailed"),
    ]
    assert "would not be sent" in warnings[1]["detail"]
    r = await marketer.post(preview, json={"ctx": {"firstName": "Ada"}})
    assert r.status_code == 200 and r.json()["render_warnings"] == [], r.text

    r = await marketer.post(f"/api/v1/messages/{event_id}/publish?dry_run=true")
    assert r.status_code == 200, r.text
    assert [(w["PKey"], w["code"]) for w in r.json()["render_warnings"]] == [
        (eve["PKey"], "empty_subject"),
        (eve["PKey"], "empty_body"),
    ]
