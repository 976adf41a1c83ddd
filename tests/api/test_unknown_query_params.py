"""Every /api/v1 operation refuses a query parameter it does not take: a 400 naming it and
listing those it takes (`?phone=` for `?mobile_phone=` listed every profile, `?dryrun=true`
published for real). The list is openapi.yaml's, operation by operation. The trigger API, the
tracking and unsubscribe links, the Twilio webhook, the console's pages and the probes take
whatever is added to their URLs (link scanners add `utm_*`, Twilio its own parameters)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from helpers import assert_problem, create_key, live_event, live_sms_event, trigger, wait_status
from txmsg.core.tracking import SECRET_NAME, LinkTracker, TrackingSettings
from txmsg.core.unsubscribe import SECRET_NAME as UNSUBSCRIBE_SECRET
from txmsg.core.unsubscribe import UnsubscribeClaim, make_token
from txmsg.store import secrets
from txmsg.store.db import Database
from txmsg.testing import FakeSMTPServer, FakeTwilio

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")
UNKNOWN = "not_a_parameter"
REFUSAL = re.compile(r"is not a query parameter of this operation \(it (.*)\)$")


def _deref(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def api_operations() -> list[tuple[str, str, list[str]]]:
    """(METHOD, path with its parameters filled in, the query parameters openapi.yaml gives
    it) for every /api/v1 operation (test_openapi.py checks they are the app's routes)."""
    spec = yaml.safe_load(SPEC_PATH.read_text("utf-8"))
    found = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method in METHODS:
            if method not in item:
                continue
            params = [
                _deref(spec, p)
                for p in (*item.get("parameters", []), *item[method].get("parameters", []))
            ]
            names = [p["name"] for p in params if p["in"] == "query"]
            filled = re.sub(r"\{version\}", "1", path)
            found.append((method.upper(), re.sub(r"\{[^}]+\}", "x", filled), names))
    return found


def _takes(body: dict[str, Any]) -> list[str]:
    """The parameters a refusal lists."""
    [error] = body["errors"]
    match = REFUSAL.search(error["detail"])
    assert match, body
    said = match.group(1)
    return [] if said == "takes no query parameter" else said.removeprefix("takes ").split(", ")


async def test_every_api_operation_refuses_a_parameter_it_does_not_take(server: Any) -> None:
    admin = server.admin
    operations = api_operations()
    assert len(operations) > 60
    failures = []
    for method, path, names in operations:
        r = await admin.request(method, path, params={UNKNOWN: "1"})
        if r.status_code != 400 or [e["field"] for e in r.json().get("errors", [])] != [UNKNOWN]:
            failures.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            continue
        assert r.headers["content-type"].startswith("application/problem+json")
        if _takes(r.json()) != names:
            failures.append(f"{method} {path}: lists {_takes(r.json())}, openapi.yaml {names}")
        # Its own parameters pass the check (their values are refused later, if at all).
        if names:
            r = await admin.request(method, path, params=dict.fromkeys(names, "zz"))
            if "is not a query parameter" in r.text:
                failures.append(f"{method} {path}: refuses its own parameters: {r.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_the_check_comes_after_the_key_and_names_the_parameter(
    server: Any, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    # No key: 401 (nothing is said of the operation); a wrong role: 403.
    anon = server.client()
    assert_problem(await anon.get("/api/v1/keys", params={UNKNOWN: "1"}), 401)
    await anon.aclose()
    marketer = server.client(await create_key(admin, "marketer"))
    assert_problem(await marketer.get("/api/v1/keys", params={UNKNOWN: "1"}), 403)
    body = assert_problem(await admin.get("/api/v1/keys", params={UNKNOWN: "1"}), 400, UNKNOWN)
    assert body["detail"] == (
        f"{UNKNOWN}: is not a query parameter of this operation (it takes no query parameter)"
    )
    # Given twice, it is still the unknown one.
    twice = [(UNKNOWN, "1"), (UNKNOWN, "2")]
    assert_problem(await admin.get("/api/v1/keys", params=twice), 400, UNKNOWN)
    # An empty value is a value.
    assert_problem(await admin.get("/api/v1/event-configs?x"), 400, "x")
    assert_problem(await admin.get("/api/v1/event-configs?x="), 400, "x")
    assert (await admin.get("/api/v1/event-configs?")).status_code == 200

    # A typo of a filter no longer lists every profile.
    r = await admin.put("/api/v1/profiles/ada", json={"mobilePhone": "+33612345678"})
    assert r.status_code == 201, r.text
    r = await admin.put("/api/v1/profiles/bob", json={"mobilePhone": "+33698765432"})
    assert r.status_code == 201, r.text
    body = assert_problem(
        await admin.get("/api/v1/profiles", params={"phone": "+33612345678"}), 400, "phone"
    )
    assert "email, mobile_phone, updated_since, limit, cursor" in body["detail"]
    r = await admin.get("/api/v1/profiles", params={"mobile_phone": "+33612345678"})
    assert r.status_code == 200, r.text
    assert [p["profile_id"] for p in r.json()["items"]] == ["ada"]

    # `?dryrun=true` publishes nothing; `?dry_run=true` is the dry run.
    r = await admin.put(f"/api/v1/messages/{event_id}/draft", json={"subject": "New", "text": "x"})
    assert r.status_code == 200, r.text
    publish = f"/api/v1/messages/{event_id}/publish"
    before = (await admin.get(f"/api/v1/messages/{event_id}")).json()
    assert_problem(await admin.post(publish, params={"dryrun": "true"}), 400, "dryrun")
    assert (await admin.post(publish, params={"dry_run": "true"})).status_code == 200
    after = (await admin.get(f"/api/v1/messages/{event_id}")).json()
    assert after["published"] == before["published"]
    assert (await admin.post(publish)).status_code == 201

    # Known parameters still read as before.
    r = await admin.get(f"/api/v1/reports/{event_id}", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    r = await admin.get(f"/api/v1/events/{event_id}", params={"limit": "1", "status": "pending"})
    assert r.status_code == 200, r.text
    await marketer.aclose()


async def test_links_triggers_and_pages_outside_the_api_take_any_parameter(
    server: Any, smtp: FakeSMTPServer, store: Database
) -> None:
    admin = server.admin
    extra = {"utm_source": "newsletter", "fbclid": "x"}
    event_id = await live_event(admin, smtp)
    ada = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    r = await admin.post(f"/rest/mc/{event_id}", params=extra, json=ada)
    assert r.status_code == 201, r.text
    href = r.json()["href"]
    assert (await admin.get(href, params=extra)).status_code == 200
    r = await admin.post(f"/rest/mc/{event_id}/batch", params=extra, json={"events": [ada]})
    assert r.status_code == 201, r.text

    anon = server.client()
    secret = await store.write(secrets.get_or_create, SECRET_NAME)
    tracker = LinkTracker(secret, "http://localhost:8025")
    html = tracker.rewrite(
        '<a href="https://shop.example/p">x</a></body>',
        "0" * 26,
        TrackingSettings(opens=True, clicks=True),
    )
    for kind in ("c", "o"):
        match = re.search(rf"http://localhost:8025(/t/{kind}/[A-Za-z0-9_.-]+)", html)
        assert match, html
        r = await anon.get(match.group(1), params=extra)
        assert r.status_code == (302 if kind == "c" else 200), r.text
    # A signed unsubscribe link of no message: the same answer with parameters as without.
    unsubscribe_secret = await store.write(secrets.get_or_create, UNSUBSCRIBE_SECRET)
    claim = UnsubscribeClaim("email", "ada", "0" * 26)
    link = f"/unsubscribe/{make_token(unsubscribe_secret, claim)}"
    plain = await anon.get(link)
    assert plain.status_code != 400, plain.text
    assert (await anon.get(link, params=extra)).status_code == plain.status_code
    for page in ("/console", "/health", "/openapi.yaml"):
        assert (await anon.get(page, params=extra)).status_code == 200, page
    await anon.aclose()


async def test_twilio_status_callbacks_take_any_parameter(
    server: Any, fake_twilio: FakeTwilio
) -> None:
    admin = server.admin
    event_id = await live_sms_event(admin, fake_twilio, server.base_url)
    body = {"mobilePhone": "+14155552671", "ctx": {"firstName": "Ada", "orderId": "A-17"}}
    accepted = await trigger(admin, event_id, body)
    await wait_status(admin, accepted["href"], "processed")
    [sms] = await fake_twilio.wait_for(1)
    assert sms.status_callback is not None
    url = sms.status_callback + "&utm_source=x"
    assert await fake_twilio.send_status(sms, "delivered", url=url) == 204
