"""Open and click tracking end to end: a tracked email through the HTTP API and the fake SMTP,
its pixel and links followed over HTTP, the delivery log, reports, webhooks, forged tokens."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from helpers import (
    assert_problem,
    create_channel,
    delivery_log_answer,
    trigger,
    wait_status,
    wait_until,
)
from profile_helpers import event_based, profile_event, put_profile
from txmsg.core.machine import hit_detail, machine_reason
from txmsg.core.reports import METRICS
from txmsg.core.signing import MAX_TOKEN_LENGTH, sign
from txmsg.core.tracking import (
    MAX_TRACKED_URL,
    SECRET_NAME,
    LinkTracker,
    TrackingSettings,
    click_token,
    decode_attribute,
    open_token,
    read_click_token,
    redirect_location,
)
from txmsg.core.unsubscribe import SECRET_NAME as UNSUBSCRIBE_SECRET
from txmsg.store import secrets
from txmsg.store.db import Database
from txmsg.store.delivery_log import for_event
from txmsg.store.tracking import hit_target
from txmsg.testing import FakeSMTPServer
from webhook_support import SECRET, Receiver

BY_ID = {"from": "ctx.id", "to": "profile_id"}
BROWSER = {
    "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0 Safari/537.36"
}
GMAIL_PROXY = {
    "user-agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
    "(via ggpht.com GoogleImageProxy)"
}
SAFE_LINKS = {"user-agent": "Mozilla/5.0 (compatible; BingPreview/1.0b)"}
SHOP = "https://shop.example.com/cart?a=1&b=2"
HTML = (
    "<html><body><p>Hi {{ profile.first_name }}</p>"
    '<a class="btn" href="https://shop.example.com/cart?a=1&amp;b=2">cart</a>'
    "<A HREF='http://Example.COM/x'>x</A>"
    '<a href="mailto:help@example.com">mail</a><a href="tel:+33123456789">call</a>'
    '<a href="#top">top</a><a href="https://example.com/raw" data-txmsg-notrack>raw</a>'
    "<a href='{{ unsubscribe_url }}'>stop</a></body></html>"
)
TEXT = "Hi {{ profile.first_name }}: https://shop.example.com/cart?a=1&b=2"


def _link(html: str, kind: str) -> str:
    match = re.search(rf"http://localhost:8025(/t/{kind}/[A-Za-z0-9_.-]+)", html)
    assert match, html
    return match.group(1)


async def _tracked_mail(
    server: Any, smtp: FakeSMTPServer, receiver_url: str
) -> tuple[str, str, Any]:
    """A profile-based email sent through a channel configuration tracking opens and clicks:
    (eventId, PKey, the message the fake SMTP server received)."""
    admin = server.admin
    channel = await create_channel(admin, smtp, tracking={"opens": True, "clicks": True})
    assert channel["tracking"] == {"opens": True, "clicks": True}
    event = await profile_event(
        admin, smtp, reconciliation=BY_ID, channel=False, html=HTML, text=TEXT
    )
    r = await admin.patch(
        f"/api/v1/event-configs/{event}", json={"webhook": {"url": receiver_url, "secret": SECRET}}
    )
    assert r.status_code == 200, r.text
    await put_profile(admin, "ada", email="ada@example.org", first_name="Ada")
    accepted = await trigger(admin, event, {"ctx": {"id": "ada"}})
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    return event, accepted["PKey"], mail


# The machine window at its 2 s default: the hits right after the send fall in it (within
# milliseconds when quiet; a 0.6 s window was missed at load 15), the later ones after it.
@pytest.mark.server_settings(tracking_machine_seconds=2.0)
async def test_opens_and_clicks_through_the_real_endpoints(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    anon = server.client()
    event, pkey, mail = await _tracked_mail(server, smtp, receiver.url)
    html = mail.html
    assert html is not None

    # The HTML: the pixel before </body>, http(s) links rewritten, every other link as written.
    open_path = _link(html, "o")
    assert re.search(
        r'<img src="http://localhost:8025/t/o/[^"]+" width="1" height="1"[^>]*>'
        r"</body></html>$",
        html,
    ), html
    assert 'class="btn" href="http://localhost:8025/t/c/' in html
    assert "<A HREF='http://localhost:8025/t/c/" in html
    assert "shop.example.com" not in html and "Example.COM" not in html
    for kept in (
        'href="mailto:help@example.com"',
        'href="tel:+33123456789"',
        'href="#top"',
        'href="https://example.com/raw" data-txmsg-notrack',
    ):
        assert kept in html, kept
    unsubscribe = mail.message["List-Unsubscribe"][1:-1]
    assert f"href='{unsubscribe}'" in html  # never rewritten
    assert mail.text is not None and mail.text.rstrip("\n") == f"Hi Ada: {SHOP}"
    clicks = re.findall(r"http://localhost:8025(/t/c/[A-Za-z0-9_.-]+)", html)
    assert len(clicks) == 2
    shop_path, example_path = clicks

    # Within the machine window of the send: kept, flagged too_early.
    r = await anon.get(open_path, headers=BROWSER)
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert r.headers["cache-control"] == "no-store"
    assert r.content.startswith(b"GIF89a\x01\x00\x01\x00") and r.content.endswith(b";")
    r = await anon.get(shop_path, headers=BROWSER)
    assert r.status_code == 302 and r.headers["location"] == SHOP
    await asyncio.sleep(server.settings.tracking_machine_seconds + 0.1)

    # People: two opens (one through Gmail's image proxy), two clicks; machines apart.
    for headers in (BROWSER, GMAIL_PROXY, SAFE_LINKS):
        r = await anon.get(open_path, headers=headers)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    r = await anon.head(open_path, headers=BROWSER)
    assert r.status_code == 200
    for path, url in ((shop_path, SHOP), (example_path, "http://Example.COM/x")):
        r = await anon.get(path, headers=BROWSER)
        assert (r.status_code, r.headers["location"]) == (302, url)
        assert r.headers["cache-control"] == "no-store"
    r = await anon.get(shop_path)  # httpx's own user agent: an HTTP library
    assert (r.status_code, r.headers["location"]) == (302, SHOP)

    # The delivery log, over the API: each hit with its time, URL and flag.
    answer = await delivery_log_answer(admin, event, pkey)
    items = [i for i in answer["items"] if i["kind"] in ("opened", "clicked")]
    seen = [
        (
            i["kind"],
            i["detail"].get("url"),
            i["detail"]["machine"],
            i["detail"].get("machine_reason"),
        )
        for i in items
    ]
    assert seen == [
        ("opened", None, True, "too_early"),
        ("clicked", SHOP, True, "too_early"),
        ("opened", None, False, None),
        ("opened", None, False, None),
        ("opened", None, True, "user_agent"),
        ("opened", None, True, "head"),
        ("clicked", SHOP, False, None),
        ("clicked", "http://Example.COM/x", False, None),
        ("clicked", SHOP, True, "user_agent"),
    ]
    # No IP address kept: the agent and the flag only.
    assert items[2]["detail"] == {"machine": False, "user_agent": BROWSER["user-agent"]}
    times = [datetime.fromisoformat(i["at"]) for i in items]
    assert times == sorted(times)
    target = await store.read(hit_target, pkey)
    assert target is not None and target.sent_at is not None
    window = server.settings.tracking_machine_seconds
    assert (times[1] - target.sent_at).total_seconds() < window
    assert (times[2] - target.sent_at).total_seconds() >= window

    # The report, value by value: people in opened/clicked (and unique), machines apart.
    expected = dict.fromkeys(METRICS, 0) | {
        "sent": 1,
        "delivered": 1,
        "opened": 2,
        "opened_unique": 1,
        "clicked": 2,
        "clicked_unique": 1,
        "opened_machine": 3,
        "clicked_machine": 2,
    }
    report = (await admin.get(f"/api/v1/reports/{event}")).json()
    assert report["total"] == expected
    r = await admin.get(f"/api/v1/reports/{event}", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    [today] = [row for row in rows if row["message_version"] == "all" and row["sent"] == "1"]
    assert {m: int(today[m]) for m in METRICS} == expected

    # The recipients report: people's opens and clicks, the first of each.
    r = await admin.get(f"/api/v1/reports/{event}/recipients", params={"format": "json"})
    [row] = r.json()["items"]
    assert (row["opened_count"], row["clicked_count"]) == (2, 2)
    assert datetime.fromisoformat(row["opened_at"]) == times[2]
    assert datetime.fromisoformat(row["clicked_at"]) == times[6]

    # Status webhooks: every open and click reaches the receiver (in any order: calls are
    # sent concurrently), with its detail and time.
    def tracked_calls() -> list[dict[str, Any]]:
        return [c for c in receiver.delivered() if c["interaction"] in ("opened", "clicked")]

    await wait_until(lambda: len(tracked_calls()) == len(items), what="interaction calls")
    calls = tracked_calls()
    assert sorted(
        (c["at"], c["interaction"], c["detail"].get("url"), c["detail"]["machine"]) for c in calls
    ) == sorted((i["at"], i["kind"], i["detail"].get("url"), i["detail"]["machine"]) for i in items)
    assert {c["PKey"] for c in calls} == {pkey}
    await anon.aclose()


async def test_forged_and_foreign_tokens_are_refused(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    anon = server.client()
    _, pkey, mail = await _tracked_mail(server, smtp, receiver.url)
    html = mail.html
    assert html is not None
    open_path, click_path = _link(html, "o"), _link(html, "c")
    payload, signature = click_path.rsplit("/", 1)[1].split(".")
    evil = base64.urlsafe_b64encode(f"c\0{pkey}\0https://evil.example/".encode()).rstrip(b"=")
    unsubscribe_token = urlsplit(mail.message["List-Unsubscribe"][1:-1]).path.rsplit("/", 1)[1]
    open_token_ = open_path.rsplit("/", 1)[1]
    forged_clicks = [
        f"{evil.decode()}.{signature}",  # the signature of another URL
        click_token("not-the-server-secret", pkey, "https://evil.example/"),
        f"{payload}.{signature[:-2]}",
        f"{payload[:-2]}.{signature}",
        open_token_,  # an open token is no click token
        unsubscribe_token,  # signed with the unsubscribe secret
        "junk",
    ]
    for bad in forged_clicks:
        r = await anon.get(f"/t/c/{bad}", headers=BROWSER)
        assert_problem(r, 404)
        assert "location" not in r.headers
    for bad in (
        open_token("not-the-server-secret", pkey),
        click_path.rsplit("/", 1)[1],
        unsubscribe_token,
        "x.y",
    ):
        assert_problem(await anon.get(f"/t/o/{bad}", headers=BROWSER), 404)
    # Nothing recorded for any of them.
    log = await store.read(for_event, pkey)
    assert not [e for e in log if e.kind.value in ("opened", "clicked")]

    # Genuine tokens of an unknown (or purged) message: the pixel and the redirect, no record.
    secret = await store.read(secrets.get, SECRET_NAME)
    assert secret is not None and secret != await store.read(secrets.get, UNSUBSCRIBE_SECRET)
    ghost = "0" * 26
    r = await anon.get(f"/t/o/{open_token(secret, ghost)}", headers=BROWSER)
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    r = await anon.get(f"/t/c/{click_token(secret, ghost, SHOP)}", headers=BROWSER)
    assert (r.status_code, r.headers["location"]) == (302, SHOP)
    assert await store.read(for_event, ghost) == []
    # A genuine token whose URL is not an http(s) one is no redirect either.
    r = await anon.get(f"/t/c/{sign(secret, 'c', pkey, 'javascript:alert(1)')}")
    assert_problem(r, 404)
    await anon.aclose()


async def test_tracking_off_leaves_the_html_untouched(server: Any, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    channel = await create_channel(admin, smtp)
    assert channel["tracking"] == {"opens": False, "clicks": False}
    event = await event_based(admin)
    html = '<html><body><a href="https://shop.example.com/">shop</a></body></html>'
    r = await admin.put(
        f"/api/v1/messages/{event}/draft", json={"subject": "S", "html": html, "text": "T"}
    )
    assert r.status_code == 200, r.text
    assert (await admin.post(f"/api/v1/messages/{event}/publish")).status_code == 201
    body = {"email": "bob@example.org", "ctx": {"firstName": "Bob"}}
    sent = await trigger(admin, event, body)
    await wait_status(admin, sent["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.html is not None and mail.html.rstrip("\n") == html

    # Clicks only: links rewritten, no pixel; the PATCH keeps the key it leaves out.
    r = await admin.patch("/api/v1/channel-configs/mail", json={"tracking": {"clicks": True}})
    assert r.status_code == 200 and r.json()["tracking"] == {"opens": False, "clicks": True}
    r = await admin.patch("/api/v1/channel-configs/mail", json={"from_name": "Shop"})
    assert r.json()["tracking"] == {"opens": False, "clicks": True}
    sent = await trigger(admin, event, body)
    await wait_status(admin, sent["href"], "processed")
    mail = (await smtp.wait_for(2))[1]
    assert mail.html is not None
    assert "/t/c/" in mail.html and "/t/o/" not in mail.html and "shop.example.com" not in mail.html
    assert mail.text is not None and mail.text.rstrip("\n") == "T"
    assert (await admin.get("/api/v1/channel-configs/mail")).json()["tracking"] == {
        "opens": False,
        "clicks": True,
    }


async def test_tracking_settings_are_validated(server: Any, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    base = {
        "name": "mail",
        "channel": "email",
        "from_email": "shop@example.com",
        "smtp": {"host": smtp.host, "port": smtp.port},
    }
    for tracking, field_name in [
        ("yes", "tracking"),
        (None, "tracking"),
        ([True], "tracking"),
        ({"opens": "yes"}, "tracking.opens"),
        ({"clicks": 1}, "tracking.clicks"),
        ({"opens": True, "links": True}, "tracking.links"),
    ]:
        r = await admin.post("/api/v1/channel-configs", json={**base, "tracking": tracking})
        assert_problem(r, 400, field_name)
    assert (await admin.get("/api/v1/channel-configs")).json()["items"] == []
    await create_channel(admin, smtp, tracking={"opens": True})
    r = await admin.patch("/api/v1/channel-configs/mail", json={"tracking": {"clicks": "no"}})
    assert_problem(r, 400, "tracking.clicks")
    view = (await admin.get("/api/v1/channel-configs/mail")).json()
    assert view["tracking"] == {"opens": True, "clicks": False}


def test_rewrite_rules() -> None:
    tracker = LinkTracker("secret", "https://mail.example.com/")
    both = TrackingSettings(opens=True, clicks=True)
    html = (
        '<p><a data-href="x" href="https://a.example/?q=1&amp;r=2" title="t">a</a>'
        '<a href=https://unquoted.example/>u</a><a name="n">n</a>'
        '<a href="https://mail.example.com/unsubscribe/abc.def">u</a>'
        '<a href="https://mail.example.com/t/c/abc.def">t</a>'
        '<a data-txmsg-notrack="" href="https://b.example/">b</a>'
        '<a href="https://c.example/ spaced">c</a>'
        f'<a href="https://d.example/{"d" * MAX_TRACKED_URL}">d</a></p>'
    )
    out = tracker.rewrite(html, "PK", both)
    expected_click = tracker.click_url("PK", "https://a.example/?q=1&r=2")
    assert f'<a data-href="x" href="{expected_click}" title="t">' in out
    for kept in (
        "href=https://unquoted.example/",
        'href="https://mail.example.com/unsubscribe/abc.def"',
        'href="https://mail.example.com/t/c/abc.def"',
        'data-txmsg-notrack="" href="https://b.example/"',
        'href="https://c.example/ spaced"',
        'href="https://d.example/ddd',
    ):
        assert kept in out, kept
    assert out.endswith(
        f'<img src="{tracker.open_url("PK")}" width="1" height="1" alt="" '
        'style="border:0;width:1px;height:1px">'
    )  # no </body>: at the end
    # Only the last </body> gets the pixel; opens only leaves links alone.
    page = "<body><a href='https://a.example/'>a</a></BODY >x</body >"
    only_opens = tracker.rewrite(page, "PK", TrackingSettings(opens=True))
    assert only_opens.startswith("<body><a href='https://a.example/'>a</a></BODY >x<img ")
    assert only_opens.endswith("></body >")


def test_machine_rules() -> None:
    sent = datetime(2026, 11, 23, 10, 0, 0)
    later = datetime(2026, 11, 23, 10, 0, 5)
    human = BROWSER["user-agent"]
    assert machine_reason("GET", human, sent, later, 2.0) is None
    assert machine_reason("HEAD", human, sent, later, 2.0) == "head"
    assert machine_reason("GET", human, sent, datetime(2026, 11, 23, 10, 0, 1), 2.0) == "too_early"
    assert machine_reason("GET", human, None, later, 2.0) == "too_early"  # send not recorded
    assert machine_reason("GET", human, sent, datetime(2026, 11, 23, 10, 0, 1), 0.0) is None
    assert machine_reason("GET", GMAIL_PROXY["user-agent"], sent, later, 2.0) is None
    for agent in (
        SAFE_LINKS["user-agent"],
        "curl/8.5.0",
        "python-requests/2.32",
        "",
        None,
        "Go-http-client/1.1",
        "Mozilla/5.0 Barracuda",
        "Mimecast/1.0",
    ):
        assert machine_reason("GET", agent, sent, later, 2.0) == "user_agent", agent
    detail = hit_detail(None, "x" * 1000, "https://a.example/")
    assert detail == {"url": "https://a.example/", "machine": False, "user_agent": "x" * 256}
    assert hit_detail("head", None) == {"machine": True, "machine_reason": "head"}


async def test_unknown_routes_stay_private(server: Any) -> None:
    """The tracking paths answer tokens only: no listing, no other method."""
    anon: httpx.AsyncClient = server.client()
    assert_problem(await anon.get("/t/o/"), 404)
    r = await anon.post("/t/c/abc.def")
    assert r.status_code == 405
    await anon.aclose()


def test_attribute_values_decode_as_browsers_do() -> None:
    """A raw "&" before a parameter whose name starts like a legacy entity (`&region`,
    `&copy=`) stays as written, as browsers leave it in an attribute value."""
    cases = {
        "https://shop.example/p?lang=en&region=eu&currency=EUR": (
            "https://shop.example/p?lang=en&region=eu&currency=EUR"
        ),
        "https://shop.example/p?a=1&copy=1&section=2&not=3": (
            "https://shop.example/p?a=1&copy=1&section=2&not=3"
        ),
        "https://shop.example/p?a=1&amp;b=2&#38;c=3&#x26;d=4&#38e=5": (
            "https://shop.example/p?a=1&b=2&c=3&d=4&e=5"
        ),
        "https://shop.example/&copy/&copy;=&notit;&notin;&AMP;x": (
            "https://shop.example/\u00a9/\u00a9=&notit;\u2209&x"
        ),
    }
    for written, followed in cases.items():
        assert decode_attribute(written) == followed, written


async def test_redirects_land_where_a_browser_goes(server: Any, store: Database) -> None:
    """Links rewritten by the tracker, followed over HTTP: the Location is the URL a browser
    would have followed from the untracked link."""
    anon = server.client()
    secret = await store.write(secrets.get_or_create, SECRET_NAME)
    tracker = LinkTracker(secret, "http://localhost:8025")
    clicks = TrackingSettings(clicks=True)
    for written, followed in [
        (
            "https://shop.example/p?lang=en&region=eu&currency=EUR",
            "https://shop.example/p?lang=en&region=eu&currency=EUR",
        ),
        ("https://shop.example/p?x=1&copy=1", "https://shop.example/p?x=1&copy=1"),
        ("https://shop.example/p?x=1&amp;y=2", "https://shop.example/p?x=1&y=2"),
        ("https://shop.example/p?x=1&#38;y=2", "https://shop.example/p?x=1&y=2"),
    ]:
        out = tracker.rewrite(f'<a href="{written}">x</a>', "0" * 26, clicks)
        path = _link(out, "c")
        r = await anon.get(path, headers=BROWSER)
        assert (r.status_code, r.headers["location"]) == (302, followed), written
    await anon.aclose()


async def test_non_ascii_tokens_are_refused(server: Any, store: Database) -> None:
    """A non-ASCII token (signature or payload) is a 404 problem on every signed-link
    endpoint, never a 500."""
    anon = server.client()
    for name in (SECRET_NAME, UNSUBSCRIBE_SECRET):
        await store.write(secrets.get_or_create, name)
    for token in ("abc.%C3%A9", "%C3%A9.abc", "abc.d%C3%A9f", "%E2%80%8B.%00"):
        for path in (f"/t/c/{token}", f"/t/o/{token}", f"/unsubscribe/{token}"):
            assert_problem(await anon.get(path, headers=BROWSER), 404)
        r = await anon.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert_problem(r, 404)
    await anon.aclose()


async def test_links_too_long_to_verify_stay_as_written(server: Any, store: Database) -> None:
    """A non-ASCII URL under MAX_TRACKED_URL characters can make a token past
    MAX_TOKEN_LENGTH: such a link stays as written rather than dead; the longest tracked
    one is followed over HTTP."""
    anon = server.client()
    secret = await store.write(secrets.get_or_create, SECRET_NAME)
    tracker = LinkTracker(secret, "http://localhost:8025")
    clicks = TrackingSettings(clicks=True)
    too_long = "https://shop.example/" + "\u00e9" * 1500
    assert len(too_long) <= MAX_TRACKED_URL
    page = f'<a href="{too_long}">x</a>'
    assert tracker.rewrite(page, "0" * 26, clicks) == page
    # The longest run of "é" that still verifies: rewritten, and its redirect works.
    fits = max(
        n
        for n in range(1000, 1500, 10)
        if len(click_token(secret, "0" * 26, "https://shop.example/" + "\u00e9" * n))
        <= MAX_TOKEN_LENGTH
    )
    url = "https://shop.example/" + "\u00e9" * fits
    r = await anon.get(_link(tracker.rewrite(f'<a href="{url}">x</a>', "0" * 26, clicks), "c"))
    assert (r.status_code, r.headers["location"]) == (302, redirect_location(url))
    assert r.headers["location"] == "https://shop.example/" + "%C3%A9" * fits
    await anon.aclose()


def test_links_are_found_attribute_by_attribute_in_linear_time() -> None:
    tracker = LinkTracker("secret", "https://mail.example.com/")
    clicks = TrackingSettings(clicks=True)
    # "href=" or the notrack marker inside another attribute's value counts for nothing.
    page = (
        '<a title="see href=\'https://evil.example/\'" href="https://good.example/">x</a>'
        '<a title="data-txmsg-notrack" href="https://b.example/">b</a>'
        "<a class=x data-txmsg-notrack href='https://c.example/'>c</a>"
        '<a title="href=https://evil.example/">d</a>'
    )
    out = tracker.rewrite(page, "PK", clicks)
    assert out == (
        "<a title=\"see href='https://evil.example/'\" "
        f'href="{tracker.click_url("PK", "https://good.example/")}">x</a>'
        f'<a title="data-txmsg-notrack" href="{tracker.click_url("PK", "https://b.example/")}">'
        "b</a><a class=x data-txmsg-notrack href='https://c.example/'>c</a>"
        '<a title="href=https://evil.example/">d</a>'
    )
    # "<a" without ">" again and again: the old pattern took about a minute on this.
    for pathological in ("<a " * 20000, "<a href" * 8600, '<a href="https://a.example/' * 2300):
        assert len(pathological) >= 60_000
        started = time.perf_counter()
        assert tracker.rewrite(pathological, "PK", clicks) == pathological
        assert time.perf_counter() - started < 1.0


def test_token_format_is_stable() -> None:
    """Links already sent must keep working: tokens signed before the signer was made cheaper
    (known answers), and the NUL rule."""
    pkey = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    url = "https://b\u00fccher.example/p?q=\u00e9&r=1"
    assert click_token("secret", pkey, url) == (
        "YwAwMUFSWjNOREVLVFNWNFJSRkZRNjlHNUZBVgBodHRwczovL2LDvGNoZXIuZXhhbXBsZS9wP3E9w6kmcj0x"
        ".wSRhE8urYJR_F5S0cxeGV7TqR0pGurc3DYq5o7OtwEM"
    )
    assert open_token("secret", pkey) == (
        "bwAwMUFSWjNOREVLVFNWNFJSRkZRNjlHNUZBVg.Eeaxpo1Azdp2zrU8tTBuZg4WydQtDligtA3GTf2wtO0"
    )
    assert read_click_token("secret", click_token("secret", pkey, url)) == (pkey, url)
    with pytest.raises(ValueError):
        click_token("secret", pkey, "https://a.example/\0")


def test_own_links_are_recognised_in_any_spelling() -> None:
    """This server's unsubscribe and tracking links stay as written however their scheme,
    host and port are spelled; look-alikes on other origins are tracked."""
    tracker = LinkTracker("secret", "https://mail.example.com/")
    clicks = TrackingSettings(clicks=True)
    for own in (
        "HTTPS://MAIL.EXAMPLE.COM/unsubscribe/abc.def",
        "https://mail.example.com:443/unsubscribe/abc.def",
        "https://Mail.Example.Com./t/c/abc.def",
        "https://mail.example.com/%75nsubscribe/abc.def",
        "https://mail.example.com&#47;unsubscribe/abc.def",
    ):
        page = f'<a href="{own}">u</a>'
        assert tracker.rewrite(page, "PK", clicks) == page, own
    for other in (
        "http://mail.example.com/unsubscribe/abc.def",  # another scheme: another origin
        "https://mail.example.com:8443/unsubscribe/abc.def",
        "https://mail.example.com.evil.example/unsubscribe/abc.def",
        "https://mail.example.com/UNSUBSCRIBE/abc.def",  # paths are case-sensitive
        "https://mail.example.com/help/unsubscribe/abc.def",
    ):
        out = tracker.rewrite(f'<a href="{other}">u</a>', "PK", clicks)
        assert out == f'<a href="{tracker.click_url("PK", other)}">u</a>', other
    # A public URL with a path and a port: the same rules under it.
    tracker = LinkTracker("secret", "http://Example.org:80/mail/")
    for own in ("http://example.org/mail/unsubscribe/x.y", "HTTP://EXAMPLE.ORG:80/mail/t/o/x.y"):
        page = f'<a href="{own}">u</a>'
        assert tracker.rewrite(page, "PK", clicks) == page, own
    out = tracker.rewrite('<a href="http://example.org/unsubscribe/x.y">u</a>', "PK", clicks)
    assert "/mail/t/c/" in out


async def test_kinds_non_ascii_redirects_and_header_injection(server: Any, store: Database) -> None:
    anon = server.client()
    secret = await store.write(secrets.get_or_create, SECRET_NAME)
    ghost = "0" * 26
    # The kind field: a genuine 3-field token whose kind is "o" is neither a click nor an
    # open; a 2-field one whose kind is "c" is no open.
    for path in (
        f"/t/c/{sign(secret, 'o', ghost, SHOP)}",
        f"/t/o/{sign(secret, 'o', ghost, SHOP)}",
        f"/t/o/{sign(secret, 'c', ghost)}",
        f"/t/c/{sign(secret, 'c', ghost)}",
    ):
        r = await anon.get(path, headers=BROWSER)
        assert_problem(r, 404)
        assert "location" not in r.headers
    # A non-ASCII URL: the host in IDNA, the rest percent-encoded, through the rewrite too.
    tracker = LinkTracker(secret, "http://localhost:8025")
    url = "https://B\u00fccher.example:8443/stra\u00dfe/\u00e9t\u00e9?q=\u00e9&amp;r=1#h\u00e9"
    out = tracker.rewrite(f'<a href="{url}">x</a>', ghost, TrackingSettings(clicks=True))
    r = await anon.get(_link(out, "c"), headers=BROWSER)
    assert r.status_code == 302
    assert r.headers["location"] == (
        "https://xn--bcher-kva.example:8443/stra%C3%9Fe/%C3%A9t%C3%A9?q=%C3%A9&r=1#h%C3%A9"
    )
    # CR/LF written as character references never reach a Location header: such a link is
    # not tracked, and a signed token carrying them (made by hand) is refused.
    page = '<a href="https://a.example/&#13;&#10;Set-Cookie:%20x=1">a</a>'
    assert tracker.rewrite(page, ghost, TrackingSettings(clicks=True)) == page
    for bad in ("https://a.example/\r\nSet-Cookie: x=1", "https://a.example/\nx", "https://a\r/"):
        r = await anon.get(f"/t/c/{click_token(secret, ghost, bad)}", headers=BROWSER)
        assert_problem(r, 404)
        assert "location" not in r.headers and "set-cookie" not in r.headers
    await anon.aclose()
