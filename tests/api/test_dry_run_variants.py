"""The dry run renders each recent event with the language variant a send would pick for it
(its profile's language), and checks once every variant no recent event picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from helpers import create_key
from profile_helpers import profile_event, put_profile
from txmsg.core.variants import MAX_VARIANTS
from txmsg.testing import FakeSMTPServer

GOOD = {"subject": "Bonjour", "html": "<p>Bonjour {{ profile.first_name }}</p>", "text": "Bonjour"}
# Renders with the sample data (which has `order`), fails for a trigger that leaves it out.
BROKEN = {**GOOD, "html": "<p>{{ ctx.order.upper() }}</p>"}


async def _triggered(server: Any, smtp: FakeSMTPServer, people: dict[str, str | None]) -> str:
    """A profile-based event with one profile and one stored trigger (no `order`) per entry of
    `people` (email local part -> the profile's language); returns the eventId."""
    event_id = await profile_event(server.admin, smtp, "dryvar")
    for name, language in people.items():
        email = f"{name}@example.org"
        await put_profile(server.admin, name, email=email, first_name=name, language=language)
        r = await server.admin.post(f"/rest/mc/{event_id}", json={"email": email, "ctx": {}})
        assert r.status_code == 201, r.text
    return event_id


_SPEC = yaml.safe_load((Path(__file__).parents[2] / "openapi.yaml").read_text("utf-8"))
_DRY_RUN = Draft202012Validator(
    {"$ref": "#/components/schemas/DryRun", "components": _SPEC["components"]}
)


async def _dry_run(client: Any, event_id: str) -> dict[str, Any]:
    """The dry run's answer, as the spec has it."""
    r = await client.post(f"/api/v1/messages/{event_id}/publish?dry_run=true")
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert [e.message for e in _DRY_RUN.iter_errors(answer)] == []
    return answer


async def _save(server: Any, event_id: str, variants: dict[str, Any]) -> None:
    draft = {"subject": "Hello", "html": "<p>Hi {{ profile.first_name }}</p>", "text": "Hi"}
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={**draft, "variants": variants}
    )
    assert r.status_code == 200, r.text


async def _pkeys(server: Any, event_id: str) -> dict[str, str]:
    """email -> PKey of the event's stored triggers."""
    r = await server.admin.get(f"/api/v1/events/{event_id}?limit=100")
    assert r.status_code == 200, r.text
    return {e["email"]: e["PKey"] for e in r.json()["items"]}


async def test_a_broken_variant_fails_for_the_events_whose_language_picks_it(
    server: Any, smtp: FakeSMTPServer
) -> None:
    people = {"ana": "fr", "bea": "fr-CA", "cy": "en", "dee": None}
    event_id = await _triggered(server, smtp, people)
    await _save(server, event_id, {"fr": BROKEN, "es": GOOD})
    answer = await _dry_run(server.admin, event_id)
    pkeys = await _pkeys(server, event_id)
    # fr and fr-CA get the French variant, as a send would (RFC 4647 lookup): both fail at
    # its HTML; en and no language get the default parts, which render.
    assert sorted((f["PKey"], f["part"]) for f in answer["failed"]) == sorted(
        (pkeys[f"{n}@example.org"], "variants.fr.html") for n in ("ana", "bea")
    ), answer["failed"]
    assert all("ctx.order" in f["reason"] for f in answer["failed"]), answer["failed"]
    assert (answer["events"], answer["rendered"]) == (4, 2)
    assert answer["variants"] == {
        "fr": {"events": 2, "rendered": 0},
        "es": {"events": 0, "rendered": 0},
    }
    # es, which no recent event picks, is checked once with the latest payload.
    [check] = answer["variant_checks"]
    assert check["language"] == "es" and check["rendered"] is True, check


async def test_a_variant_no_recent_event_picks_is_checked_all_the_same(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await _triggered(server, smtp, {"ana": None, "bob": "en"})
    await _save(server, event_id, {"de": BROKEN, "it": GOOD})
    answer = await _dry_run(server.admin, event_id)
    # Every recent event renders with the default parts: nothing of theirs fails.
    assert (answer["events"], answer["rendered"], answer["failed"]) == (2, 2, [])
    latest = (await server.admin.get(f"/api/v1/events/{event_id}?limit=1")).json()["items"][0]
    checks = {c["language"]: c for c in answer["variant_checks"]}
    assert checks["de"]["PKey"] == latest["PKey"]
    assert checks["de"]["rendered"] is False and checks["de"]["part"] == "variants.de.html"
    assert "ctx.order" in checks["de"]["reason"], checks["de"]
    assert checks["it"]["rendered"] is True and checks["it"]["render_warnings"] == []
    assert answer["variants"]["de"] == {"events": 0, "rendered": 0}


async def test_a_marketers_dry_run_shows_no_payload_data_in_variant_failures(
    server: Any, smtp: FakeSMTPServer
) -> None:
    event_id = await profile_event(server.admin, smtp, "dryvar")
    await put_profile(server.admin, "ana", email="ana@example.org", language="fr")
    r = await server.admin.post(
        f"/rest/mc/{event_id}", json={"email": "ana@example.org", "ctx": {"order": "Zanzibar"}}
    )
    assert r.status_code == 201, r.text
    # Looks a payload's value up: the error quotes it ('Zanzibar' is not in the data).
    quoting = {**GOOD, "text": "{{ {'known': 1}[ctx.order] }}"}
    await _save(server, event_id, {"fr": quoting, "de": quoting})
    admins = await _dry_run(server.admin, event_id)
    [failed] = admins["failed"]
    assert failed["part"] == "variants.fr.text" and "Zanzibar" in failed["reason"], failed
    [check] = admins["variant_checks"]
    assert check["part"] == "variants.de.text" and "Zanzibar" in check["reason"], check

    marketer = server.client(await create_key(server.admin, "marketer"))
    theirs = await _dry_run(marketer, event_id)
    unshown = "line 1: this event's data does not render (an admin's dry run shows the error)"
    [failed] = theirs["failed"]
    assert (failed["part"], failed["reason"]) == ("variants.fr.text", unshown), failed
    [check] = theirs["variant_checks"]
    assert (check["part"], check["reason"]) == ("variants.de.text", unshown), check
    assert theirs["sample"] == [] and "Zanzibar" not in str(theirs)
    # A name the variant itself writes is told to them (read from the variant's source, not
    # the default's, which does not write it).
    await _save(server, event_id, {"fr": {**GOOD, "html": "<p>\n{{ ctx.coupon }}</p>"}})
    theirs = await _dry_run(marketer, event_id)
    [failed] = theirs["failed"]
    assert failed["part"] == "variants.fr.html", failed
    assert failed["reason"] == "line 2: ctx.coupon is not in the data", failed


async def test_every_variant_is_checked_once_however_many(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Renders stay bounded: one per recent event, one per variant none of them picks."""
    event_id = await _triggered(server, smtp, {"ana": "aa", "bob": "ab", "cy": None})
    languages = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(MAX_VARIANTS)]
    variants = {language: BROKEN if language == "aa" else GOOD for language in languages}
    await _save(server, event_id, variants)
    answer = await _dry_run(server.admin, event_id)
    assert (answer["events"], answer["rendered"], len(answer["failed"])) == (3, 2, 1)
    assert answer["failed"][0]["part"] == "variants.aa.html"
    checked = [c["language"] for c in answer["variant_checks"]]
    assert sorted(checked) == sorted(languages[2:]), checked
    assert all(c["rendered"] for c in answer["variant_checks"])
    assert answer["variants"]["aa"] == {"events": 1, "rendered": 0}
    assert answer["variants"]["ab"] == {"events": 1, "rendered": 1}
    assert answer["events"] + len(checked) <= 100 + MAX_VARIANTS


async def test_a_draft_without_the_published_languages_is_compared_with_what_each_gets(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Published with fr, then fr removed from the draft: the admin's sample compares the
    French recipient's new text with the French text they get today, not with the default."""
    event_id = await _triggered(server, smtp, {"ana": "fr", "bob": None})
    await _save(server, event_id, {"fr": GOOD})
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish")
    assert r.status_code == 201, r.text
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={"subject": "Hello", "html": "<p>Hi {{ profile.first_name }}</p>", "text": "Hi"},
    )
    assert r.status_code == 200, r.text
    answer = await _dry_run(server.admin, event_id)
    pkeys = await _pkeys(server, event_id)
    diffs = {s["PKey"]: s["diff"] for s in answer["sample"]}
    # Ana gets "Bonjour" today and would get "Hello": a difference. Bob's default is unchanged.
    assert "Bonjour" in diffs[pkeys["ana@example.org"]].get("subject", ""), diffs
    assert diffs[pkeys["bob@example.org"]] == {}, diffs
