"""The console in a real browser (Debian's Chromium, headless, driven by Playwright).

One walk through what a marketer does, with screenshots of every page at desktop and phone
widths (tests/browser/screenshots/, not committed), the accessibility basics checked by
axe-core (vendored, run in the page) and keyboard-only editing and publishing. No request of
the pages may leave the server's origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright import async_api as playwright_api

from helpers import (
    create_channel,
    live_event,
    live_sms_event,
    publish_message,
    trigger,
    wait_status,
)
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).resolve().parent
SHOTS = HERE / "screenshots"
AXE = HERE / "vendor" / "axe.min.js"
WIDTHS = {"desktop": 1280, "phone": 390}

if not Path(CHROMIUM).exists():  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)


def sqlite_only(test: Any) -> Any:
    test.sqlite_only = True  # the pages are the same on both engines; the API tests cover both
    return test


def accept_dialogs(page: Any, errors: list[str]) -> None:
    """A page left with unsaved work asks first (beforeunload): it is left. The console asks
    everything else in the page itself, so any other native dialog is one of `errors`. One
    still open as the browser closes may be gone before the answer: nothing left to accept."""

    async def accept(dialog: Any) -> None:
        if dialog.type != "beforeunload":
            errors.append(f"a native {dialog.type} dialog: {dialog.message}")
        try:
            await dialog.accept()
        except playwright_api.Error as exc:
            if "No dialog is showing" not in str(exc):
                raise

    page.on("dialog", accept)


async def answer(page: Any, question: str, button: str) -> None:
    """The console's question (a dialog in the page) that contains `question`, answered with
    `button`; it is gone once answered."""
    asked = page.get_by_role("dialog")
    await playwright_api.expect(asked).to_contain_text(question)
    await asked.get_by_role("button", name=button).click()
    await playwright_api.expect(asked).to_have_count(0)


def record_traffic(page: Any) -> list[str]:
    """What `page` asks of the server and what it shows (dialogs, console lines), each with the
    time since it opened: a failed expectation says what happened before it."""
    start = time.monotonic()
    lines: list[str] = []

    def note(text: str) -> None:
        lines.append(f"{time.monotonic() - start:7.3f}s {text}")

    page.on("request", lambda r: note(f"-> {r.method} {r.url}"))
    page.on("response", lambda r: note(f"<- {r.status} {r.request.method} {r.url}"))
    page.on("requestfailed", lambda r: note(f"!! {r.method} {r.url}: {r.failure}"))
    page.on("dialog", lambda d: note(f"dialog {d.type}: {d.message}"))
    page.on("console", lambda m: note(f"console {m.type}: {m.text}"))
    return lines


@contextlib.asynccontextmanager
async def signed_in(
    server: Any, path: str = "/console", key: str | None = None
) -> AsyncIterator[Any]:
    """A page of a new browser on the console at `path`, signed in with `key` (the admin key
    unless told); its dialogs are accepted, and a script error on it fails the test."""
    from conftest import ADMIN_KEY

    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        accept_dialogs(page, errors)
        traffic = record_traffic(page)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await page.goto(server.base_url + path)
            await page.get_by_label("API key").fill(key or ADMIN_KEY)
            await page.keyboard.press("Enter")
            yield page
        except AssertionError as exc:
            exc.add_note("What the page did, oldest first:\n" + "\n".join(traffic))
            raise
        finally:
            await browser.close()
    assert errors == [], errors


@contextlib.asynccontextmanager
async def editing(server: Any, event_id: str) -> AsyncIterator[Any]:
    """An admin's page on the message editor of `event_id`, signed in, once its preview
    shows."""
    expect = playwright_api.expect
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)
        await expect(page.locator("#preview-subject")).not_to_have_text("")
        yield page


async def stored_message(server: Any, event_id: str) -> dict[str, Any]:
    """The message of `event_id` as the API answers it (draft, published version...)."""
    r = await server.admin.get(f"/api/v1/messages/{event_id}")
    assert r.status_code == 200, r.text
    message: dict[str, Any] = r.json()
    return message


async def open_editor(page: Any, event_id: str) -> None:
    """The message editor of `event_id`, once it shows."""
    await page.evaluate(f"location.hash = '#/editor/{event_id}'")
    heading = page.get_by_role("heading", name=f"Message {event_id}")
    await playwright_api.expect(heading).to_be_visible()


async def _shoot(page: Any, name: str) -> None:
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def _tab_to(page: Any, what: str, wanted: str) -> None:
    """Presses Tab until `what` (evaluated in the page) is `wanted`: keyboard only."""
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate(what) == wanted:
            return
    raise AssertionError(f"Tab never reached {wanted!r}")


async def _axe(page: Any) -> None:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    assert result == [], result


@sqlite_only
async def test_the_console_walk(server: Any, smtp: FakeSMTPServer) -> None:
    SHOTS.mkdir(exist_ok=True)
    await create_channel(server.admin, smtp)
    outside: list[str] = []
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = await browser.new_context(bypass_csp=True)  # axe is injected inline
        page = await context.new_page()
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((server.base_url, "data:", "about:"))
                else outside.append(r.url)
            ),
        )
        errors: list[str] = []
        accept_dialogs(page, errors)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await _walk(page, server, smtp)
        finally:
            await browser.close()
            assert errors == [], errors
    assert outside == [], f"the console loaded from another host: {outside}"


async def _walk(page: Any, server: Any, smtp: FakeSMTPServer) -> None:
    expect = playwright_api.expect
    # A send (the proof) or a render on a machine busy with the rest of the suite can take
    # longer than Playwright's 5 s default.
    expect.set_options(timeout=20_000)
    await page.goto(server.base_url + "/console")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await _shoot(page, "sign-in")
    await _axe(page)
    await page.get_by_label("API key").fill("not a key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    from conftest import ADMIN_KEY

    await page.get_by_label("API key").fill(ADMIN_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["txmsg_session"]["httpOnly"] and cookies["txmsg_session"]["sameSite"] == "Strict"
    assert ADMIN_KEY not in cookies["txmsg_session"]["value"]

    # create and publish an event configuration
    await page.get_by_role("link", name="New event configuration").click()
    await page.get_by_label("Event ID").fill("consoleDemo")
    await page.get_by_label("Tags (comma separated)").fill("demo")
    await _shoot(page, "event-new")
    await _axe(page)
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("heading", name="EVTconsoleDemo")).to_be_visible()
    await page.get_by_role("button", name="Publish").click()
    await answer(page, "Publish EVTconsoleDemo?", "Publish")
    await expect(page.get_by_text("state published")).to_be_visible()
    await expect(page.locator("pre", has_text="import httpx")).to_contain_text(
        "/rest/mc/EVTconsoleDemo"
    )
    await _shoot(page, "event")
    await (
        page.get_by_role("link", name="Event configurations")
        .or_(page.get_by_role("link", name="Events"))
        .first.click()
    )
    await expect(page.get_by_role("cell", name="EVTconsoleDemo")).to_be_visible()
    await _shoot(page, "events")
    await _axe(page)

    # the editor: live preview, a typo's warning at its line, dry run, publish, proof
    await page.evaluate("location.hash = '#/editor/EVTconsoleDemo'")
    await expect(page.get_by_role("heading", name="Message EVTconsoleDemo")).to_be_visible()
    await page.get_by_label("Subject").fill("Hello {{ ctx.firstName }}")
    await expect(page.locator("#preview-subject")).to_have_text("Subject: Hello sample firstName")
    await page.get_by_label("HTML").fill("<p>Hi</p>\n<p>{{ ctx.lastProdct }}</p>")
    warning = page.locator("#warn-html li")
    await expect(warning).to_contain_text("Line 2, column 7")
    await expect(warning).to_contain_text("did you mean ctx.lastProduct?")
    await expect(warning.locator("code")).to_have_text(["ctx.lastProdct", "ctx.lastProduct"])
    await _shoot(page, "editor-warning")
    await page.get_by_label("HTML").fill("<p>Hi {{ ctx.lastProduct | default('you') }}</p>")
    await expect(warning).to_have_count(0)
    frame = page.frame_locator("iframe[title='Preview at phone width']")
    await expect(frame.locator("p")).to_have_text("Hi sample lastProduct")
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.locator("#dry-run")).to_contain_text("recent events render")
    await page.get_by_role("button", name="Publish").click()
    await answer(page, "Publish the draft of EVTconsoleDemo?", "Publish")
    await expect(page.get_by_role("status").filter(has_text="Published version 1")).to_be_visible()
    # Publishing reloads the editor: fill the proof address in the reloaded page, not the old one.
    await expect(page.get_by_text("Published version 1 · language: default")).to_be_visible()
    await page.get_by_label("Send a proof to").fill("proof@example.org")
    await page.get_by_role("button", name="Send proof").click()
    await expect(page.get_by_text("Proof sent to proof@example.org")).to_be_visible()
    [proof] = await smtp.wait_for(1)
    assert proof.rcpt_tos == ["proof@example.org"] and "[Proof] Hello" in proof.subject
    await _shoot(page, "editor")
    await _axe(page)

    # keyboard only: edit the subject and publish
    await page.locator("body").click(position={"x": 1, "y": 1})
    await _tab_to(page, "document.activeElement.id", "part-subject")
    await page.keyboard.press("End")
    await page.keyboard.type("!")
    await expect(page.locator("#preview-subject")).to_have_text("Subject: Hello sample firstName!")
    await _tab_to(page, "document.activeElement.textContent", "Publish")
    await page.keyboard.press("Enter")
    asked = page.get_by_role("dialog")
    await expect(asked.get_by_role("button", name="Publish")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").filter(has_text="Published version 2")).to_be_visible()

    # latest events: a trigger over the API shows up, with its status
    accepted = await trigger(
        server.admin, "EVTconsoleDemo", {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    )
    await wait_status(server.admin, accepted["href"], "processed")
    await page.goto(server.base_url + "/console#/latest/EVTconsoleDemo")
    await expect(page.get_by_role("cell", name=accepted["PKey"])).to_be_visible()
    await page.get_by_label("Status").select_option("routingFailed")
    await expect(page.get_by_role("cell", name=accepted["PKey"])).to_have_count(0)
    await page.get_by_label("Status").select_option("processed")
    await expect(page.get_by_role("cell", name=accepted["PKey"])).to_be_visible()
    await page.get_by_role("button", name="Delivery log").click()
    await expect(page.get_by_text("sent ", exact=False).first).to_be_visible()
    await _shoot(page, "latest-events")
    await _axe(page)

    # results and export flows
    await page.goto(server.base_url + "/console#/reports/EVTconsoleDemo")
    await expect(page.locator("svg.chart polyline")).to_have_count(5)
    await expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    await _shoot(page, "results")
    await _axe(page)
    await page.get_by_role("link", name="Export flows").click()
    await expect(page.get_by_role("heading", name="Export flows")).to_be_visible()
    await _shoot(page, "export-flows")

    # sign out: the session is gone
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    r = await page.request.get(server.base_url + "/api/v1/event-configs")
    assert r.status == 401


@sqlite_only
async def test_the_console_when_answers_are_slow_or_absent(
    server: Any, smtp: FakeSMTPServer, fake_twilio: Any
) -> None:
    """A late answer never replaces the page asked for since; an unreachable server is said,
    not thrown; bounces are counted hard and soft together; an SMS editor offers no proof."""
    event_id = await live_event(server.admin, smtp, "slowDemo")
    sms_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, "/console") as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()

        # The report answers late, with 3 hard and 2 soft bounces: shown as 5 bounced.
        async def late_report(route: Any) -> None:
            await asyncio.sleep(1.5)
            answer = await route.fetch()
            body = await answer.json()
            for day in [body["total"], *body["days"]]:
                day.update(bounced_hard=3, bounced_soft=2)
            await route.fulfill(response=answer, json=body)

        await page.route("**/api/v1/reports/**", late_report)
        await page.evaluate(f"location.hash = '#/reports/{event_id}'")
        await expect(page.get_by_role("heading", name=f"Results of {event_id}")).to_be_visible()
        bounced = page.locator("tbody tr").first.locator("td").nth(5)
        await expect(bounced).to_have_text("5")
        # Asked for another page while the report loads: that page stays.
        await page.evaluate("location.hash = '#/events'")
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await page.evaluate(f"location.hash = '#/reports/{event_id}'")
        await page.wait_for_timeout(300)
        await page.evaluate("location.hash = '#/events'")
        await page.wait_for_timeout(2500)  # the report's answer would have come meanwhile
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()

        # An SMS message's editor: no proof form (proofs go by email).
        await open_editor(page, sms_id)
        await expect(page.get_by_label("Send a proof to")).to_have_count(0)
        await expect(page.get_by_text("Proofs are sent by email")).to_be_visible()

        # The server unreachable: each page says so, and signing out still signs out.
        await page.route("**/api/v1/**", lambda route: route.abort())
        await page.evaluate("location.hash = '#/events'")
        await expect(page.get_by_text("cannot be reached").first).to_be_visible()
        await page.route("**/console/session", lambda route: route.abort())
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


@sqlite_only
async def test_the_editor_saves_in_order_and_before_publishing(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A slow save never lands after a newer one; Publish saves what was just typed first, and
    publishes nothing while the fields cannot be saved."""
    event_id = await live_event(server.admin, smtp, "orderDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)

    async def stored() -> dict[str, Any]:
        return await stored_message(server, event_id)

    async with signed_in(server, "/console") as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)
        subject = page.get_by_label("Subject")
        preview = page.locator("#preview-subject")
        sample = page.get_by_label("Sample data (ctx, JSON)")
        await expect(preview).not_to_have_text("")
        sample_json = await sample.input_value()

        # The first save answers late; the second is typed while it is on its way.
        held = asyncio.Event()

        async def first_save_late(route: Any) -> None:
            if route.request.method == "PUT" and not held.is_set():
                held.set()
                await asyncio.sleep(1.5)
            await route.continue_()

        await page.route("**/api/v1/messages/*/draft", first_save_late)
        await subject.fill("First {{ ctx.firstName }}")
        await asyncio.wait_for(held.wait(), 10)
        await subject.fill("Second {{ ctx.firstName }}")
        await expect(preview).to_have_text("Subject: Second sample firstName")
        await page.wait_for_timeout(2000)  # the late save has long landed
        assert (await stored())["draft"]["subject"] == "Second {{ ctx.firstName }}"

        # Publish at once after typing, before the pause that saves: what was typed goes out.
        await subject.fill("Third {{ ctx.firstName }}")
        await page.get_by_role("button", name="Publish").click()
        await answer(page, "Publish the draft", "Publish")
        published = page.get_by_role("status").filter(has_text="Published version 2")
        await expect(published).to_be_visible()
        assert (await stored())["published"]["subject"] == "Third {{ ctx.firstName }}"

        # Unsavable fields (the sample data is not JSON): nothing is published.
        await expect(subject).to_have_value("Third {{ ctx.firstName }}")
        await sample.fill("{not json")
        await subject.fill("Fourth {{ ctx.firstName }}")
        await page.get_by_role("button", name="Publish").click()
        await expect(page.locator("#editor-error")).to_have_text("Sample data is not valid JSON")
        await page.wait_for_timeout(500)
        await expect(page.get_by_role("dialog")).to_have_count(0)
        message = await stored()
        assert message["published"]["version"] == 2
        assert message["published"]["subject"] == "Third {{ ctx.firstName }}"

        # A proof the relay refuses is said to be refused, with the relay's words.
        await sample.fill(sample_json)
        await expect(page.locator("#editor-error")).to_have_text("")
        smtp.fail_next(550, "5.1.1 no such user", stage="RCPT")
        await page.get_by_label("Send a proof to").fill("proof@example.org")
        await page.get_by_role("button", name="Send proof").click()
        await expect(page.get_by_text("Proof not sent to proof@example.org")).to_contain_text(
            "no such user"
        )
        assert smtp.messages == []


@sqlite_only
async def test_an_edit_outlives_the_session_that_ended_under_it(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """The session ends while a marketer types: the sign-in page says why, and signing in again
    brings back what was typed, and saves it."""
    event_id = await live_event(server.admin, smtp, "expiryDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = await browser.new_context()
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            from conftest import ADMIN_KEY

            async def sign_in() -> None:
                await page.get_by_label("API key").fill(ADMIN_KEY)
                await page.keyboard.press("Enter")

            await page.goto(server.base_url + f"/console#/editor/{event_id}")
            await sign_in()
            await expect(page.get_by_role("heading", name=f"Message {event_id}")).to_be_visible()
            await context.clear_cookies(name="txmsg_session")  # as if its 8 hours were up
            await page.get_by_label("HTML").fill("<p>Typed as the session ended</p>")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await expect(page.get_by_role("alert")).to_contain_text("session has ended")
            await sign_in()
            await expect(page.get_by_label("HTML")).to_have_value(
                "<p>Typed as the session ended</p>"
            )
            for _ in range(100):
                r = await server.admin.get(f"/api/v1/messages/{event_id}")
                if r.json()["draft"]["html"] == "<p>Typed as the session ended</p>":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the edit was never saved: {r.json()['draft']}")
        finally:
            await browser.close()
    assert errors == [], errors


@sqlite_only
async def test_two_tabs_editing_one_message_do_not_overwrite_each_other(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Tab A saves a subject; tab B, opened before, then types HTML: B's save is refused and B
    says why, A's subject stays, and B's text stays in its fields and, once B loads the latest
    version, beside it. B publishes nothing meanwhile, and a language variant added over the
    API after B loaded is not put back by B's next keystroke."""
    event_id = await live_event(server.admin, smtp, "twoTabs")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)

    async def stored() -> dict[str, Any]:
        return await stored_message(server, event_id)

    async def stored_until(part: str, value: str) -> dict[str, Any]:
        for _ in range(200):
            message = await stored()
            if message["draft"][part] == value:
                return message
            await asyncio.sleep(0.1)
        raise AssertionError(f"{part} was never saved as {value!r}: {message['draft']}")

    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = await browser.new_context()
        a, b = await context.new_page(), await context.new_page()
        errors: list[str] = []
        for page in (a, b):
            page.on("pageerror", lambda e: errors.append(str(e)))
            accept_dialogs(page, errors)
        try:
            from conftest import ADMIN_KEY

            await a.goto(server.base_url + "/console")
            await a.get_by_label("API key").fill(ADMIN_KEY)
            await a.keyboard.press("Enter")
            await expect(a.get_by_role("heading", name="Event configurations")).to_be_visible()
            for page in (a, b):
                await page.goto(server.base_url + f"/console#/editor/{event_id}")
                heading = page.get_by_role("heading", name=f"Message {event_id}")
                await expect(heading).to_be_visible()
                await expect(page.locator("#preview-subject")).not_to_have_text("")
            first_html = (await stored())["draft"]["html"]

            await a.get_by_label("Subject", exact=True).fill("From A {{ ctx.firstName }}")
            await stored_until("subject", "From A {{ ctx.firstName }}")

            await b.get_by_label("HTML", exact=True).fill("<p>From B</p>")
            changed = b.get_by_role("alert").filter(has_text="Someone else changed this message")
            await expect(changed).to_be_visible()
            await expect(b.get_by_label("HTML", exact=True)).to_have_value("<p>From B</p>")
            message = await stored()
            assert message["draft"]["subject"] == "From A {{ ctx.firstName }}"
            assert message["draft"]["html"] == first_html
            kept = await b.evaluate(f"sessionStorage.getItem('txmsg-edit:{event_id}')")
            assert "<p>From B</p>" in kept

            # Publishing from B saves first: refused, so nothing is published.
            await b.get_by_role("button", name="Publish").click()
            await expect(changed).to_be_visible()
            await b.wait_for_timeout(1000)
            assert (await stored())["published"]["version"] == 1

            # The latest version, with what B typed beside it (only what B typed).
            await b.get_by_role("button", name="Load the latest version").click()
            await expect(b.get_by_label("Subject", exact=True)).to_have_value(
                "From A {{ ctx.firstName }}"
            )
            await expect(b.get_by_label("HTML", exact=True)).to_have_value(first_html)
            await expect(b.get_by_label("Your unsaved HTML", exact=True)).to_have_value(
                "<p>From B</p>"
            )
            await expect(b.get_by_label("Your unsaved subject", exact=True)).to_have_count(0)
            await expect(changed).to_have_count(0)
            await b.get_by_label("HTML", exact=True).fill("<p>From B, again</p>")
            message = await stored_until("html", "<p>From B, again</p>")
            assert message["draft"]["subject"] == "From A {{ ctx.firstName }}"
            await b.get_by_role("button", name="Discard your unsaved text").click()
            await expect(b.get_by_label("Your unsaved HTML", exact=True)).to_have_count(0)

            # A variant added over the API since: B's next keystroke does not remove it.
            french = {"subject": "Bonjour", "html": "<p>Salut</p>", "text": "Salut"}
            parts = {k: message["draft"][k] for k in ("subject", "html", "text")}
            r = await server.admin.put(
                f"/api/v1/messages/{event_id}/draft", json={**parts, "variants": {"fr": french}}
            )
            assert r.status_code == 200, r.text
            await b.get_by_label("Subject", exact=True).fill("From B {{ ctx.firstName }}")
            await expect(changed).to_be_visible()
            await b.wait_for_timeout(1000)
            message = await stored()
            assert message["draft"]["variants"] == {"fr": french}
            assert message["draft"]["subject"] == "From A {{ ctx.firstName }}"
        finally:
            await browser.close()
    assert errors == [], errors


@sqlite_only
async def test_the_editor_says_whether_what_was_typed_is_saved(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Beside the buttons: "Saving…" while a save is on its way, "Saved" once it is stored,
    "Not saved" and why when it is refused, the server fails or someone else saved since;
    what it says never moves the buttons or what is under them."""
    event_id = await live_event(server.admin, smtp, "savedDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        state = page.locator("#save-state")
        await expect(state).to_have_attribute("role", "status")
        await expect(state).to_have_text("")
        publish = page.get_by_role("button", name="Publish")
        below = page.get_by_label("Send a proof to")

        async def layout() -> list[Any]:
            return [await publish.bounding_box(), await below.bounding_box()]

        before = await layout()
        line = (await state.bounding_box())["height"]

        # A save held on its way: "Saving…" until it lands, then "Saved".
        held, release = asyncio.Event(), asyncio.Event()

        async def hold(route: Any) -> None:
            if route.request.method == "PUT":
                held.set()
                await release.wait()
            await route.continue_()

        await page.route("**/api/v1/messages/*/draft", hold)
        await page.get_by_label("Subject").fill("Saved {{ ctx.firstName }}")
        await asyncio.wait_for(held.wait(), 10)
        await expect(state).to_have_text("Saving…")
        assert await layout() == before
        release.set()
        await expect(state).to_have_text("Saved")
        assert await layout() == before
        stored = await stored_message(server, event_id)
        assert stored["draft"]["subject"] == "Saved {{ ctx.firstName }}"
        await page.unroute("**/api/v1/messages/*/draft", hold)

        # Refused for a syntax error (shown at its field): not saved.
        html = page.get_by_label("HTML", exact=True)
        await html.fill("<p>{{ ctx.firstName </p>")
        await expect(state).to_have_text("Not saved: fix the errors above")
        assert (await state.bounding_box())["height"] == line  # the errors above move it, no more

        # The server fails: not saved, and why.
        async def unavailable(route: Any) -> None:
            if route.request.method != "PUT":
                await route.continue_()
                return
            await route.fulfill(
                status=503,
                content_type="application/problem+json",
                body='{"detail": "Service unavailable"}',
            )

        await page.route("**/api/v1/messages/*/draft", unavailable)
        await html.fill("<p>Hi {{ ctx.firstName }}</p>")
        await expect(state).to_have_text("Not saved: server error (HTTP 503)")
        assert (await state.bounding_box())["height"] == line
        await page.unroute("**/api/v1/messages/*/draft", unavailable)
        await html.fill("<p>Hello {{ ctx.firstName }}</p>")
        await expect(state).to_have_text("Saved")

        # The sample data is not JSON: not saved.
        sample = page.get_by_label("Sample data (ctx, JSON)")
        sample_json = await sample.input_value()
        await sample.fill("{not json")
        await expect(state).to_have_text("Not saved: the sample data is not valid JSON")
        await sample.fill(sample_json)
        await expect(state).to_have_text("Saved")

        # Someone else saved since: not saved, and said so.
        r = await server.admin.put(
            f"/api/v1/messages/{event_id}/draft",
            json={"subject": "Other tab", "html": "<p>Other</p>", "text": "Other"},
        )
        assert r.status_code == 200, r.text
        await html.fill("<p>Mine {{ ctx.firstName }}</p>")
        await expect(state).to_have_text("Not saved: someone else changed this message")
        assert (await state.bounding_box())["height"] == line
        await page.set_viewport_size({"width": WIDTHS["phone"], "height": 844})
        assert (await state.bounding_box())["height"] == line  # one line on a phone too
        assert (await stored_message(server, event_id))["draft"]["subject"] == "Other tab"


@sqlite_only
async def test_the_fields_edit_the_language_chosen(server: Any, smtp: FakeSMTPServer) -> None:
    """With language variants, "Language to edit" chooses which one the fields edit (and the
    preview shows): typed into a variant, it is saved into that variant, the default is kept;
    an error of the variant shows at its field while it is edited, and names it otherwise."""
    event_id = await live_event(server.admin, smtp, "langDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    message = await stored_message(server, event_id)
    default = {k: message["draft"][k] for k in ("subject", "html", "text")}
    french = {"subject": "Bonjour {{ ctx.firstName }}", "html": "<p>Salut</p>", "text": "Salut"}
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={**default, "variants": {"fr": french}}
    )
    assert r.status_code == 200, r.text
    async with editing(server, event_id) as page:
        subject, html = page.get_by_label("Subject"), page.get_by_label("HTML", exact=True)
        state = page.locator("#save-state")
        chosen = page.get_by_label("Language to edit")
        await expect(subject).to_have_value(default["subject"])
        await chosen.select_option("fr")
        await expect(subject).to_have_value(french["subject"])
        await expect(page.get_by_label("Preview language")).to_have_value("fr")
        await expect(page.locator("#preview-subject")).to_have_text(
            "Subject: Bonjour sample firstName"
        )

        await subject.fill("Salut {{ ctx.firstName }}")
        await expect(page.locator("#preview-subject")).to_have_text(
            "Subject: Salut sample firstName"
        )
        await expect(state).to_have_text("Saved")
        draft = (await stored_message(server, event_id))["draft"]
        assert draft["variants"]["fr"] == {**french, "subject": "Salut {{ ctx.firstName }}"}
        assert draft["subject"] == default["subject"]

        # The variant's error shows at its field while it is edited; elsewhere, named.
        await html.fill("<p>\n{{ ctx.firstName </p>")
        await expect(page.locator("#part-html-error")).to_contain_text("Line 2")
        await chosen.select_option("")
        await expect(subject).to_have_value(default["subject"])
        await expect(html).to_have_value(default["html"])
        await expect(html).not_to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#editor-error")).to_contain_text("HTML (fr)")
        await chosen.select_option("fr")
        await html.fill("<p>Salut {{ ctx.firstName }}</p>")
        await expect(state).to_have_text("Saved")
        await expect(page.locator("#editor-error")).to_have_text("")
        draft = (await stored_message(server, event_id))["draft"]
        assert draft["variants"]["fr"]["html"] == "<p>Salut {{ ctx.firstName }}</p>"
        assert draft["html"] == default["html"]


async def with_french(server: Any, event_id: str, **others: dict[str, str]) -> dict[str, Any]:
    """The draft of `event_id` given a French variant (and `others`); answers the default's
    parts and each variant's, as stored."""
    message = await stored_message(server, event_id)
    default = {k: message["draft"][k] for k in ("subject", "html", "text")}
    variants = {
        "fr": {"subject": "Bonjour {{ ctx.firstName }}", "html": "<p>Salut</p>", "text": "Salut"},
        **others,
    }
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={**default, "variants": variants}
    )
    assert r.status_code == 200, r.text
    return {"": default, **variants}


@sqlite_only
async def test_a_language_added_in_the_editor_is_saved_and_published(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A language code entered under "Add a language" (Enter adds it) adds that language to
    the draft, saved, as a copy of the default's texts; the fields then edit it, what is typed
    there is saved into it, and Publish publishes it beside the default."""
    event_id = await live_event(server.admin, smtp, "addLangDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    message = await stored_message(server, event_id)
    default = {k: message["draft"][k] for k in ("subject", "html", "text")}
    async with editing(server, event_id) as page:
        subject = page.get_by_label("Subject")
        chosen = page.get_by_label("Language to edit")
        state = page.locator("#save-state")
        code = page.get_by_label("Language code")
        await expect(chosen).to_have_value("")
        await expect(page.locator("#new-language-hint")).to_contain_text(
            "starts as a copy of the default content"
        )
        await code.fill("fr")
        await code.press("Enter")
        await expect(chosen).to_have_value("fr")
        await expect(subject).to_be_focused()
        await expect(subject).to_have_value(default["subject"])
        await expect(code).to_have_value("")
        await expect(page.get_by_label("Preview language")).to_have_value("fr")
        await expect(
            page.get_by_text("Published version 1 · languages: default, fr")
        ).to_be_visible()
        await expect(state).to_have_text("Saved")
        assert (await stored_message(server, event_id))["draft"]["variants"] == {"fr": default}

        await subject.fill("Bonjour {{ ctx.firstName }}")
        await expect(page.locator("#preview-subject")).to_have_text(
            "Subject: Bonjour sample firstName"
        )
        await expect(state).to_have_text("Saved")
        draft = (await stored_message(server, event_id))["draft"]
        assert draft["variants"] == {"fr": {**default, "subject": "Bonjour {{ ctx.firstName }}"}}
        assert {k: draft[k] for k in default} == default

        await page.get_by_role("button", name="Publish").click()
        await answer(page, f"Publish the draft of {event_id}?", "Publish")
        await expect(
            page.get_by_text("Published version 2 · languages: default, fr")
        ).to_be_visible()
        published = (await stored_message(server, event_id))["published"]
        assert published["version"] == 2
        assert published["variants"] == {
            "fr": {**default, "subject": "Bonjour {{ ctx.firstName }}"}
        }
        assert {k: published[k] for k in default} == default


@sqlite_only
async def test_a_bad_or_existing_language_code_is_refused_at_its_field(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A language code the API refuses is refused at its field in the API's own words, a
    language the message has already in a sentence; the field has the focus, nothing is
    added. A good code then clears the error."""
    event_id = await live_event(server.admin, smtp, "badLangDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    texts = await with_french(server, event_id)
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={**texts[""], "variants": {"French": texts[""]}}
    )
    assert r.status_code == 400, r.text
    [refused] = r.json()["errors"]
    async with editing(server, event_id) as page:
        code = page.get_by_label("Language code")
        add = page.get_by_role("button", name="Add language")
        error = page.locator("#new-language-error")
        languages = page.locator("#edit-language option")
        await code.fill("French")
        await add.click()
        await expect(error).to_have_text(f"Language code {refused['detail']}")
        await expect(code).to_have_attribute("aria-invalid", "true")
        await expect(code).to_have_attribute(
            "aria-describedby", "new-language-hint new-language-error"
        )
        await expect(code).to_be_focused()
        await expect(languages).to_have_text(["default", "fr"])
        await expect(page.get_by_label("Language to edit")).to_have_value("")

        await code.fill("fr")
        await code.press("Enter")
        await expect(error).to_have_text(
            'This message already has the language fr: choose it in "Language to edit".'
        )
        await expect(code).to_be_focused()
        await expect(languages).to_have_text(["default", "fr"])
        assert list((await stored_message(server, event_id))["draft"]["variants"]) == ["fr"]

        await code.fill("de")
        await code.press("Enter")
        await expect(page.get_by_label("Language to edit")).to_have_value("de")
        await expect(error).to_have_count(0)
        await expect(code).not_to_have_attribute("aria-invalid", "true")
        await expect(languages).to_have_text(["default", "fr", "de"])


@sqlite_only
async def test_a_language_is_removed_once_asked_and_cancel_keeps_it(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """The editor's "Remove language" asks in the page (Enter would cancel); Cancel keeps it.
    Once answered, the language leaves the draft (saved), the fields edit the default, and
    the published version keeps it until Publish."""
    event_id = await live_event(server.admin, smtp, "removeLangDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    german = {"subject": "Hallo", "html": "<p>Hallo</p>", "text": "Hallo"}
    texts = await with_french(server, event_id, de=german)
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish")
    assert r.status_code == 201, r.text
    async with editing(server, event_id) as page:
        subject = page.get_by_label("Subject")
        chosen = page.get_by_label("Language to edit")
        state = page.locator("#save-state")
        remove = page.get_by_role("button", name="Remove language")
        await expect(remove).to_be_hidden()  # the default cannot be removed
        await chosen.select_option("fr")
        await expect(subject).to_have_value(texts["fr"]["subject"])
        await remove.click()
        asked = page.get_by_role("dialog")
        await expect(asked.get_by_role("button", name="Cancel")).to_be_focused()
        await answer(page, "Remove the language fr from the draft?", "Cancel")
        await expect(remove).to_be_focused()
        await expect(chosen).to_have_value("fr")
        await expect(subject).to_have_value(texts["fr"]["subject"])
        assert set((await stored_message(server, event_id))["draft"]["variants"]) == {"fr", "de"}

        await remove.click()
        await answer(page, "The published version keeps sending fr until you publish.", "Remove fr")
        await expect(chosen).to_have_value("")
        await expect(chosen).to_be_focused()
        await expect(subject).to_have_value(texts[""]["subject"])
        await expect(page.locator("#edit-language option")).to_have_text(["default", "de"])
        await expect(page.locator("#preview-language option")).to_have_text(["default", "de"])
        await expect(remove).to_be_hidden()
        await expect(state).to_have_text("Saved")
        message = await stored_message(server, event_id)
        assert message["draft"]["variants"] == {"de": german}
        assert set(message["published"]["variants"]) == {"fr", "de"}
        await expect(page.get_by_text("languages: default, de")).to_be_visible()


@sqlite_only
async def test_an_error_of_a_language_reads_for_a_marketer_and_takes_the_editor_there(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """An error in a language not edited is named for a marketer ("HTML (fr)", never
    `variants.fr.html`): its button, and a refused Dry run, take the editor to that
    language, its part in error focused. Publish refused for a language's part names it so."""
    event_id = await live_event(server.admin, smtp, "errLangDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    await with_french(server, event_id)
    async with editing(server, event_id) as page:
        html = page.get_by_label("HTML", exact=True)
        chosen = page.get_by_label("Language to edit")
        state = page.locator("#save-state")
        problem = page.locator("#editor-error")
        await chosen.select_option("fr")
        await html.fill("<p>\n{{ ctx.firstName </p>")
        await expect(page.locator("#part-html-error")).to_contain_text("Line 2")
        await expect(state).to_have_text("Not saved: fix the errors above")
        await chosen.select_option("")
        await expect(html).not_to_have_attribute("aria-invalid", "true")
        await expect(problem).to_contain_text("HTML (fr): Line 2")

        await page.get_by_role("button", name="Edit HTML (fr)").click()
        await expect(chosen).to_have_value("fr")
        await expect(html).to_be_focused()
        await expect(html).to_have_attribute("aria-invalid", "true")

        await chosen.select_option("")
        await expect(problem).to_contain_text("HTML (fr)")
        await page.get_by_role("button", name="Dry run").click()
        await expect(chosen).to_have_value("fr")
        await expect(html).to_be_focused()
        await expect(page.locator("#part-html-error")).to_contain_text("Line 2")
        await expect(page.locator("#dry-run")).to_have_text("")

        await html.fill("<p>{{ ctx.nope }}</p>")
        await expect(state).to_have_text("Saved")
        await chosen.select_option("")
        await page.get_by_role("button", name="Publish").click()
        await answer(page, f"Publish the draft of {event_id}?", "Publish")
        await expect(problem).to_contain_text("cannot be published: HTML (fr): ")
        await expect(problem).not_to_contain_text("variants.")
        assert (await stored_message(server, event_id))["published"]["version"] == 1


@sqlite_only
async def test_errors_show_beside_the_fields_they_name(server: Any, smtp: FakeSMTPServer) -> None:
    """A refused new event or draft says what is wrong beside the field it names (marked
    invalid for assistive technology); the channel configurations offered are the chosen
    channel's; "Required" is read whatever its case."""
    await create_channel(server.admin, smtp)
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, "/console#/new") as page:
        await expect(page.get_by_role("heading", name="New event configuration")).to_be_visible()
        configs = page.get_by_label("Channel configuration")
        await expect(configs.locator("option")).to_have_text(["mail"])
        await page.get_by_label("Channel", exact=True).select_option("sms")
        await expect(configs.locator("option")).to_have_count(0)  # no SMS configuration
        await page.get_by_label("Channel", exact=True).select_option("email")

        event_id = page.get_by_label("Event ID")
        await event_id.fill("9lives")
        await page.get_by_role("button", name="Create").click()
        await expect(event_id).to_have_attribute("aria-invalid", "true")
        # In the form's words: its label, not the API's field name.
        await expect(page.locator("#ev-id-error")).to_contain_text("must start with a letter")
        await expect(page.get_by_role("alert")).to_contain_text("Event ID must start")
        fields = page.get_by_label("Payload fields (one per line: name:type[:required])")
        await event_id.fill("caseDemo")
        await fields.fill("firstName:string: Required\nnote:string:maybe")
        await page.get_by_role("button", name="Create").click()
        await expect(page.locator("#ev-fields-error")).to_contain_text("note:string:maybe")
        await expect(event_id).not_to_have_attribute("aria-invalid", "true")
        await fields.fill("firstName:string: Required\nnote:string")
        await page.get_by_role("button", name="Create").click()
        await expect(page.get_by_role("heading", name="EVTcaseDemo")).to_be_visible()
        stored = (await server.admin.get("/api/v1/event-configs/EVTcaseDemo")).json()
        assert [(f["name"], f["required"]) for f in stored["fields"]] == [
            ("firstName", True),
            ("note", False),
        ]

        # A draft refused for a syntax error: the error shows at its part, with its line.
        r = await server.admin.post("/api/v1/event-configs/EVTcaseDemo/publish")
        assert r.status_code == 200, r.text
        await page.evaluate("location.hash = '#/editor/EVTcaseDemo'")
        await expect(page.get_by_role("heading", name="Message EVTcaseDemo")).to_be_visible()
        await expect(page.locator("#version-diff")).to_contain_text("Nothing is published yet")
        await expect(page.get_by_role("button", name="Compare versions")).to_be_disabled()
        await page.get_by_label("HTML").fill("<p>\n{{ ctx.firstName </p>")
        await expect(page.locator("#part-html-error")).to_contain_text("Line 2")
        await expect(page.get_by_label("HTML")).to_have_attribute("aria-invalid", "true")


@sqlite_only
async def test_comparing_large_versions_does_not_freeze_the_page(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Two versions of 20,000 different lines each (a line-by-line table of 400 million
    cells): shown as removed then added, at once; one changed line among 20,000 alike: just
    that line."""
    event_id = await live_event(server.admin, smtp, "bigDemo")
    old = "\n".join(f"a{i}" for i in range(20_000))
    await publish_message(server.admin, event_id, subject="s", html=old, text="t")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)

    async def compare(page: Any, draft_html: str) -> Any:
        draft = {"subject": "s", "html": draft_html, "text": "t"}
        r = await server.admin.put(f"/api/v1/messages/{event_id}/draft", json=draft)
        assert r.status_code == 200, r.text
        # Through the events page: the editor already showing has the same heading, and
        # would be the one compared (its draft the old one) before the new one replaces it.
        await page.evaluate("location.hash = '#/events'")
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)
        await page.get_by_label("From").select_option(label="v2")  # the published one
        await page.get_by_role("button", name="Compare versions").click()
        return page.locator("#version-diff")

    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        diff = await compare(page, "\n".join(f"b{i}" for i in range(20_000)))
        # At once, not after the seconds a 400-million-cell table takes (12 s and more).
        await expect(diff.locator(".diff-add").last).to_have_text("+ b19999", timeout=6000)
        await expect(diff.locator(".diff-del").first).to_have_text("- a0")
        diff = await compare(page, old.replace("a10000\n", "changed\n"))
        await expect(diff.locator(".diff-add")).to_have_text(["+ changed"])
        await expect(diff.locator(".diff-del")).to_have_text(["- a10000"])


@sqlite_only
async def test_a_version_that_does_not_load_is_not_shown_as_all_added(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Compared with a version the server did not answer, every line would read as added:
    the comparison says the version could not be loaded instead."""
    event_id = await live_event(server.admin, smtp, "lostDemo")
    expect = playwright_api.expect
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)

        async def unavailable(route: Any) -> None:
            await route.fulfill(
                status=503,
                content_type="application/problem+json",
                body='{"status": 503, "detail": "the database is busy"}',
            )

        await page.route("**/api/v1/messages/*/versions/*", unavailable)
        await page.get_by_role("button", name="Compare versions").click()
        diff = page.locator("#version-diff")
        await expect(diff).to_have_text("Version 1 could not be loaded: the database is busy")
        await expect(diff.locator(".diff-add")).to_have_count(0)


@sqlite_only
async def test_a_proof_to_a_suppressed_address_is_refused_beside_it(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """The suppression list's refusal of a proof's address is shown beside the address field,
    and goes once the proof is sent to another address."""
    event_id = await live_event(server.admin, smtp, "proofDemo")
    r = await server.admin.post(
        "/api/v1/denylist",
        json={"channel": "email", "address": "blocked@example.org", "reason": "case 4711"},
    )
    assert r.status_code in (200, 201), r.text
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        to = page.get_by_label("Send a proof to")
        await to.fill("Blocked@example.org")
        await page.get_by_role("button", name="Send proof").click()
        await expect(to).to_have_attribute("aria-invalid", "true")
        note = page.locator("#proof-to-error")
        await expect(note).to_contain_text("suppression list (denylist)")
        await expect(note).not_to_contain_text("4711")
        # Said to assistive technology too, in the field's words, not the API's pointer.
        await expect(note).to_have_attribute("aria-live", "polite")
        await expect(note).not_to_contain_text("addresses")
        summary = page.get_by_role("status").filter(has_text="suppression list")
        await expect(summary).to_contain_text("Send a proof to: ")
        await expect(summary).not_to_contain_text("addresses")
        assert smtp.messages == []

        await to.fill("qa@example.org")
        await page.get_by_role("button", name="Send proof").click()
        await expect(page.get_by_text("Proof sent to qa@example.org")).to_be_visible()
        await expect(note).to_have_count(0)
        await expect(to).not_to_have_attribute("aria-invalid", "true")
        [proof] = await smtp.wait_for(1)
        assert proof.rcpt_tos == ["qa@example.org"]


@sqlite_only
async def test_the_preview_warns_of_what_a_send_would_refuse(
    server: Any, smtp: FakeSMTPServer, fake_twilio: Any
) -> None:
    """Beside the preview: an email without a body (not sent) or a subject; an SMS's length,
    encoding and segments, and a text past Twilio's 1,600 characters (refused: not sent)."""
    email_id = await live_event(server.admin, smtp, "warnDemo")
    sms_id = await live_sms_event(server.admin, fake_twilio, server.base_url, "smsWarnDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, email_id)
        warnings = page.locator("#preview-warnings li")
        await expect(page.locator("#preview-subject")).not_to_have_text("")
        await expect(warnings).to_have_count(0)
        await page.get_by_label("HTML").fill("{% if false %}<p>x</p>{% endif %}")
        await page.get_by_label("Text", exact=True).fill("  ")
        await expect(warnings).to_have_text(
            [
                "The HTML and the text both render empty: this email would not be sent "
                "(the event would end routingFailed)."
            ]
        )
        await expect(warnings).to_have_class("blocking")
        await page.get_by_label("Subject").fill("{% if false %}x{% endif %}")
        await expect(warnings.first).to_contain_text("The subject renders empty")
        await expect(warnings).to_have_count(2)
        await page.get_by_label("HTML").fill("<p>Hi</p>")
        await page.get_by_label("Subject").fill("Hi")
        await expect(warnings).to_have_count(0)

        await open_editor(page, sms_id)
        facts = page.locator("#preview-sms-facts")
        await expect(facts).not_to_have_text("")
        await page.get_by_label("SMS body").fill("x" * 160)
        await expect(facts).to_have_text("160 characters · GSM-7 · 1 segment")
        await page.get_by_label("SMS body").fill("{" + "x" * 159)
        await expect(facts).to_have_text("160 characters · GSM-7 · 2 segments")
        await page.get_by_label("SMS body").fill("😀" * 35)
        await expect(facts).to_have_text("70 characters · UCS-2 · 1 segment")
        await expect(warnings).to_have_count(0)
        await page.get_by_label("SMS body").fill("x" * 1601)
        await expect(facts).to_have_text("1,601 characters · GSM-7 · 11 segments")
        await expect(warnings).to_contain_text(
            ["The text is 1,601 characters, over Twilio's limit of 1,600: Twilio would refuse it"]
        )
        await expect(warnings).to_have_class("blocking")
        SHOTS.mkdir(exist_ok=True)
        await _shoot(page, "editor-sms-too-long")
        await page.get_by_label("SMS body").fill("{% if false %}x{% endif %}")
        await expect(facts).to_have_text("0 characters · GSM-7 · 0 segments")
        await expect(warnings).to_contain_text(["The text renders empty"])


@sqlite_only
async def test_a_preview_that_cannot_be_made_is_not_left_showing_the_old_message(
    server: Any, smtp: FakeSMTPServer, fake_twilio: Any
) -> None:
    """Fields that cannot be saved: the preview no longer shows the last message saved (nor
    an SMS's old length and warnings), and says it is out of date; fixed, it comes back."""
    email_id = await live_event(server.admin, smtp, "staleDemo")
    sms_id = await live_sms_event(server.admin, fake_twilio, server.base_url, "smsStaleDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, email_id)
        subject = page.locator("#preview-subject")
        outdated = page.locator("#preview-outdated")
        frame = page.frame_locator("iframe[title='Preview at phone width']")
        await expect(subject).to_have_text("Subject: Hello sample firstName")
        await expect(frame.locator("p")).to_contain_text("Hi sample firstName")
        await expect(outdated).to_be_hidden()
        for part in ("Subject", "HTML", "Text"):
            await page.get_by_label(part, exact=True).fill("")
        await expect(outdated).to_have_text("Preview out of date: fix the errors above.")
        await expect(subject).to_have_text("")
        await expect(frame.locator("p")).to_have_count(0)
        await page.get_by_label("Subject", exact=True).fill("Back {{ ctx.firstName }}")
        await page.get_by_label("Text", exact=True).fill("Hi {{ ctx.firstName }}")
        await expect(subject).to_have_text("Subject: Back sample firstName")
        await expect(outdated).to_be_hidden()

        await open_editor(page, sms_id)
        facts = page.locator("#preview-sms-facts")
        warnings = page.locator("#preview-warnings li")
        await page.get_by_label("SMS body").fill("x" * 1700)
        await expect(facts).to_have_text("1,700 characters · GSM-7 · 12 segments")
        await expect(warnings).to_have_count(1)
        await page.get_by_label("SMS body").fill("")
        await expect(page.locator("#preview-outdated")).to_be_visible()
        await expect(facts).to_have_text("")
        await expect(warnings).to_have_count(0)
        await expect(page.locator("#preview-sms")).to_have_text("")
        await expect(page.locator("#part-body-error")).to_have_text("SMS body is required")
        SHOTS.mkdir(exist_ok=True)
        await _shoot(page, "editor-sms-outdated")


@sqlite_only
@pytest.mark.server_settings(render_timeout_seconds=0.5)
async def test_render_errors_show_beside_the_part_in_plain_words(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A part that takes too long to render, or a template past the size a request may have:
    said beside the part (marked invalid), in words a marketer reads; syntax errors too, as
    errors, apart from the part's warnings."""
    event_id = await live_event(server.admin, smtp, "renderDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)
        html = page.get_by_label("HTML", exact=True)
        note = page.locator("#part-html-error")
        await expect(page.locator("#preview-subject")).not_to_have_text("")

        await html.fill(
            "<p>{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
            "{% endfor %}slow</p>"
        )
        await expect(note).to_contain_text("rendering took longer than the 0.5 s")
        await expect(note).to_have_attribute("aria-live", "polite")
        await expect(html).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#preview-outdated")).to_be_visible()
        await expect(page.locator("#editor-error")).to_contain_text("HTML: rendering took")
        await expect(page.locator("#editor-error")).not_to_contain_text("cannot be rendered")

        await html.fill("<p>" + "x" * 1_100_000 + "</p>")
        await expect(note).to_have_text("This template is too large: at most 1 MB")
        await expect(html).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#editor-error")).not_to_contain_text("bytes")

        await html.fill("<p>\n{{ ctx.firstName </p>")
        await expect(note).to_contain_text("Line 2")
        await expect(note).to_have_class("error field-error")
        await expect(page.locator("#warn-html li")).to_have_count(0)

        await html.fill("<p>Fine {{ ctx.firstName }}</p>")
        await expect(note).to_have_count(0)
        await expect(html).not_to_have_attribute("aria-invalid", "true")
        frame = page.frame_locator("iframe[title='Preview at phone width']")
        await expect(frame.locator("p")).to_have_text("Fine sample firstName")


@sqlite_only
async def test_publish_says_why_it_cannot_before_asking_to_confirm(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A draft that cannot be saved, or one someone else saved since: Publish asks nothing,
    publishes nothing, and says why."""
    event_id = await live_event(server.admin, smtp, "askDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        asked = page.get_by_role("dialog")
        status = page.get_by_role("status").filter(has_text="Not published")

        await page.get_by_label("HTML", exact=True).fill("<p>{{ ctx.firstName </p>")
        await expect(page.locator("#editor-error")).not_to_have_text("")
        await page.get_by_role("button", name="Publish").click()
        await expect(status).to_contain_text("cannot be saved")
        await expect(asked).to_have_count(0)

        await page.get_by_label("HTML", exact=True).fill("<p>Hi {{ ctx.firstName }}</p>")
        await expect(page.locator("#editor-error")).to_have_text("")
        r = await server.admin.put(
            f"/api/v1/messages/{event_id}/draft",
            json={"subject": "Other tab", "html": "<p>Other</p>", "text": "Other"},
        )
        assert r.status_code == 200, r.text
        await page.get_by_role("button", name="Publish").click()
        await expect(status).to_contain_text("someone else changed this message")
        await expect(asked).to_have_count(0)
        assert (await stored_message(server, event_id))["published"]["version"] == 1


@sqlite_only
async def test_a_publish_cancelled_publishes_nothing(server: Any, smtp: FakeSMTPServer) -> None:
    """Cancel, or Esc, when asked before publishing: the draft is saved, nothing is published,
    and the page is usable again; a double click asks once and publishes once."""
    event_id = await live_event(server.admin, smtp, "cancelDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        await page.get_by_label("Subject").fill("Not yet {{ ctx.firstName }}")
        publish = page.get_by_role("button", name="Publish")
        await publish.click()
        await answer(page, f"Publish the draft of {event_id}?", "Cancel")
        await publish.click()
        await expect(page.get_by_role("dialog")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("dialog")).to_have_count(0)
        await page.wait_for_timeout(500)
        message = await stored_message(server, event_id)
        assert message["published"]["version"] == 1
        assert message["draft"]["subject"] == "Not yet {{ ctx.firstName }}"

        # Two clicks before the question shows: asked once, published once.
        await publish.dblclick()
        await answer(page, f"Publish the draft of {event_id}?", "Publish")
        published = page.get_by_role("status").filter(has_text="Published version 2")
        await expect(published).to_be_visible()
        await page.wait_for_timeout(500)
        await expect(page.get_by_role("dialog")).to_have_count(0)
        assert (await stored_message(server, event_id))["published"]["version"] == 2


@sqlite_only
async def test_admin_pages_tell_a_marketer_they_need_an_admin_key(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A marketer who opens an admin page (a link, a bookmark) is told it needs an admin key,
    not shown the API's refusal; an event page fits a phone's width."""
    event_id = await live_event(server.admin, smtp, "roleDemo")
    r = await server.admin.post("/api/v1/keys", json={"role": "marketer", "label": "console"})
    assert r.status_code == 201, r.text
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, key=r.json()["key"]) as page:
        await expect(page.get_by_text("Signed in as marketer")).to_be_visible()
        for hash_, title in (
            (f"#/latest/{event_id}", "Latest events"),
            ("#/exports", "Export flows"),
        ):
            await page.evaluate(f"location.hash = '{hash_}'")
            await expect(page.get_by_role("heading", name=title)).to_be_visible()
            await expect(page.get_by_text("This page needs an admin key")).to_be_visible()
            await expect(page.locator("main .error")).to_have_count(0)

        await page.set_viewport_size({"width": 390, "height": 900})
        await page.evaluate(f"location.hash = '#/event/{event_id}'")
        await expect(page.get_by_text("Trigger URL")).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width


@sqlite_only
async def test_a_dry_run_says_why_events_fail_and_publish_asks_knowing_it(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A marketer's dry run says why each failing event fails (without quoting its payload);
    Publish then says how many failed in its question."""
    event_id = await live_event(server.admin, smtp, "dryDemo")
    for name in ("Ada", "Grace"):
        await trigger(
            server.admin, event_id, {"email": "a@example.org", "ctx": {"firstName": name}}
        )
    await trigger(
        server.admin,
        event_id,
        {"email": "b@example.org", "ctx": {"firstName": "Bo", "amount": 10}},
    )
    r = await server.admin.post("/api/v1/keys", json={"role": "marketer", "label": "console"})
    assert r.status_code == 201, r.text
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, key=r.json()["key"]) as page:
        await expect(page.get_by_text("Signed in as marketer")).to_be_visible()
        await open_editor(page, event_id)
        await expect(page.locator("#preview-subject")).not_to_have_text("")
        await page.get_by_label("HTML", exact=True).fill(
            "<p>Total {{ (ctx.amount * 1.2) | round(2) }}</p>"
        )
        frame = page.frame_locator("iframe[title='Preview at phone width']")
        await expect(frame.locator("p")).to_contain_text("Total 1")
        await page.get_by_role("button", name="Dry run").click()
        dry = page.locator("#dry-run")
        await expect(dry).to_contain_text("Dry run: 1 of 3 recent events render.")
        failures = dry.locator("li.error")
        await expect(failures).to_have_count(2)
        for i in range(2):
            await expect(failures.nth(i)).to_contain_text("HTML, line 1: ")
            await expect(failures.nth(i)).to_contain_text("amount")
        await expect(dry).not_to_contain_text("Ada")
        await page.get_by_role("button", name="Publish").click()
        await answer(page, "The last dry run failed for 2 of 3 recent events.", "Cancel")
        assert (await stored_message(server, event_id))["published"]["version"] == 1


@sqlite_only
async def test_a_dry_run_names_a_languages_failure_and_takes_the_editor_there(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A dry run renders a French profile's event with the French variant and each language
    no recent event uses once: their failures read "HTML (fr)", "HTML (de)", a button takes
    the editor to the language, and Publish asks knowing them."""
    event_id = await profile_event(server.admin, smtp, "dryLangDemo")
    await put_profile(server.admin, "ana", email="ana@example.org", language="fr")
    await trigger(server.admin, event_id, {"email": "ana@example.org", "ctx": {}})
    # Renders with the sample data (it has `order`), not for the trigger, which left it out.
    broken = {"subject": "Bonjour", "html": "<p>{{ ctx.order.upper() }}</p>", "text": "Salut"}
    default = {k: (await stored_message(server, event_id))["draft"][k] for k in broken}
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={**default, "variants": {"fr": broken, "de": broken}},
    )
    assert r.status_code == 200, r.text
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        await page.get_by_role("button", name="Dry run").click()
        dry = page.locator("#dry-run")
        await expect(dry).to_contain_text("Dry run: 0 of 1 recent events render.")
        failures = dry.locator("li.error")
        await expect(failures).to_have_count(2)
        await expect(failures.nth(0)).to_contain_text("HTML (fr), line 1: ctx.order")
        await expect(failures.nth(1)).to_contain_text("de: HTML (de), line 1: ctx.order")
        await expect(dry).to_contain_text("Languages no recent event uses")
        await expect(dry).not_to_contain_text("variants.")
        await dry.get_by_role("button", name="Edit HTML (fr)").click()
        await expect(page.get_by_label("Language to edit")).to_have_value("fr")
        await expect(page.get_by_label("HTML", exact=True)).to_be_focused()
        await page.get_by_role("button", name="Publish").click()
        await answer(
            page,
            "failed for 1 of 1 recent events and for 1 language no recent event uses.",
            "Cancel",
        )
        assert (await stored_message(server, event_id))["published"]["version"] == 1


@sqlite_only
async def test_lifecycle_questions_say_what_happens_to_triggers_and_queued_events(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """Pause, Resume and Unpublish each ask saying what becomes of the trigger URL and of the
    events already queued (Enter cancels an Unpublish), and say in a sentence what was done."""
    event_id = await live_event(server.admin, smtp, "lifeDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, f"/console#/event/{event_id}") as page:
        state = page.get_by_text("state ", exact=False).first
        await expect(state).to_contain_text("state published")
        said = page.get_by_role("status")
        for action, question, result, now in (
            (
                "Pause",
                "new and queued events wait (paused) until it is resumed",
                "is paused: events are",
                "paused",
            ),
            ("Resume", "Events waiting (paused) go back to the queue", "is resumed", "published"),
            (
                "Unpublish",
                "Its trigger URL answers 404 from now on",
                "is unpublished",
                "unpublished",
            ),
        ):
            await page.get_by_role("button", name=action).click()
            await expect(page.get_by_role("dialog")).to_contain_text(question)
            # Enter does what can be undone; for Unpublish, it cancels until chosen.
            focused = "Cancel" if action == "Unpublish" else action
            asked = page.get_by_role("dialog").get_by_role("button", name=focused)
            await expect(asked).to_be_focused()
            await answer(page, f"{action} {event_id}? ", action)
            await expect(said).to_contain_text(f"{event_id} {result}")
            await expect(state).to_contain_text(f"state {now}")
        r = await server.admin.get(f"/api/v1/event-configs/{event_id}")
        assert r.json()["state"] == "unpublished"


@sqlite_only
async def test_render_errors_and_warnings_read_as_plain_sentences(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """A name the sample data lacks, a division by zero, an attribute the sandbox refuses: said
    in plain words, not the engine's; the names in warnings show as code, not in backticks."""
    event_id = await live_event(server.admin, smtp, "wordsDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with editing(server, event_id) as page:
        html = page.get_by_label("HTML", exact=True)
        note = page.locator("#part-html-error")
        warning = page.locator("#warn-html li")
        await html.fill("<p>Hi</p>\n<p>Total {{ (ctx.cartTotl * 1.2) | round(2) }}</p>")
        await expect(note).to_have_text("Line 2: ctx.cartTotl is not in the sample data")
        await expect(warning).to_have_text(
            "Line 2, column 14: ctx.cartTotl is not provided by this event: "
            "did you mean ctx.amount?"
        )
        await expect(warning.locator("code")).to_have_text(["ctx.cartTotl", "ctx.amount"])
        await expect(page.locator("main")).not_to_contain_text("`")
        await expect(page.locator("main")).not_to_contain_text("dict object")
        for source, said in (
            ("<p>{{ 1 / 0 }}</p>", "Line 1: division by zero"),
            (
                "<p>{{ ''.__class__ }}</p>",
                "Line 1: this template uses something templates may not use (__class__)",
            ),
        ):
            await html.fill(source)
            await expect(note).to_have_text(said)


@sqlite_only
async def test_publish_refused_for_errors_takes_the_focus_to_the_first_one(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """At a phone's width, Publish, Dry run or a proof refused for an error far above: the
    first field in error takes the focus and is scrolled into view."""
    event_id = await live_event(server.admin, smtp, "focusDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await page.set_viewport_size({"width": 390, "height": 700})
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await open_editor(page, event_id)
        await expect(page.locator("#preview-subject")).not_to_have_text("")
        subject = page.get_by_label("Subject", exact=True)
        await subject.fill("Hi {{ ctx.firstName ")
        await expect(subject).to_have_attribute("aria-invalid", "true")
        for button in ("Publish", "Dry run", "Send proof"):
            if button == "Send proof":
                await page.get_by_label("Send a proof to").fill("qa@example.org")
            target = page.get_by_role("button", name=button)
            await target.scroll_into_view_if_needed()
            await expect(subject).not_to_be_in_viewport()
            await target.click()
            await expect(subject).to_be_focused()
            await expect(subject).to_be_in_viewport()
        await expect(page.get_by_role("dialog")).to_have_count(0)
        assert smtp.messages == []


@sqlite_only
async def test_empty_or_odd_results_are_said(server: Any, smtp: FakeSMTPServer) -> None:
    """A status filter with no events says so; a page of one event without its ID shows the
    events; an ID that names no event says so, plainly."""
    event_id = await live_event(server.admin, smtp, "emptyDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server, f"/console#/latest/{event_id}") as page:
        cell = page.locator("tbody td")
        await expect(cell).to_have_text("No events yet.")
        await page.get_by_label("Status").select_option("routingFailed")
        await expect(cell).to_have_text("No events with status routingFailed.")
        for hash_ in ("#/editor", "#/event/", "#/reports/", "#/latest"):
            await page.evaluate("location.hash = '#/exports'")
            await expect(page.get_by_role("heading", name="Export flows")).to_be_visible()
            await page.evaluate(f"location.hash = '{hash_}'")
            heading = page.get_by_role("heading", name="Event configurations")
            await expect(heading).to_be_visible()
            await expect(page.get_by_role("cell", name=event_id)).to_be_visible()
        for hash_, title in (
            ("#/event/EVTnope", "EVTnope"),
            ("#/editor/EVTnope", "Message EVTnope"),
        ):
            await page.evaluate(f"location.hash = '{hash_}'")
            await expect(page.get_by_role("heading", name=title)).to_be_visible()
            await expect(page.locator("main")).to_contain_text("No event named EVTnope.")
            await expect(page.locator("main")).not_to_contain_text("undefined")


@sqlite_only
async def test_the_sign_in_page_focuses_the_api_key(server: Any) -> None:
    """The sign-in page puts the focus on the API key, on opening and after signing out."""
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(page.get_by_label("API key")).to_be_focused()
        await page.reload()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(page.get_by_label("API key")).to_be_focused()
        await page.keyboard.type("not a key")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")


@sqlite_only
async def test_results_show_failures_and_the_charts_scale(
    server: Any, smtp: FakeSMTPServer
) -> None:
    """The results page counts what failed, was ignored, bounced, was marked as spam or
    unsubscribed (as the CSV does); the chart says its top count and its first and last days,
    and sent stays visible under an equal delivered."""
    event_id = await live_event(server.admin, smtp, "resultsDemo")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with signed_in(server) as page:
        await expect(page.get_by_role("heading", name="Event configurations")).to_be_visible()

        async def counted(route: Any) -> None:
            answer = await route.fetch()
            body = await answer.json()
            figures = dict(sent=1200, delivered=1200, failed=4, ignored=2, bounced_hard=3)
            figures.update(bounced_soft=1, spam=1, unsubscribed=5)
            for day in [body["total"], body["days"][-1]]:
                day.update(figures)
            await route.fulfill(response=answer, json=body)

        await page.route("**/api/v1/reports/**", counted)
        await page.evaluate(f"location.hash = '#/reports/{event_id}'")
        await expect(page.get_by_role("heading", name=f"Results of {event_id}")).to_be_visible()
        headers = page.locator("thead th")
        await expect(headers).to_have_text(
            [
                "Day",
                *("sent", "delivered", "opened", "clicked", "bounced"),
                *("failed", "ignored", "spam", "unsubscribed"),
            ]
        )
        last = page.locator("tbody tr").last.locator("td")
        await expect(last.nth(6)).to_have_text("4")
        await expect(last.nth(7)).to_have_text("2")
        await expect(last.nth(9)).to_have_text("5")
        await expect(page.locator("#results-total")).to_contain_text(
            "4 failed, 2 ignored, 4 bounced (3 hard), 1 marked as spam, 5 unsubscribed"
        )
        chart = page.locator("svg.chart")
        await expect(chart.locator("[data-axis=max]")).to_have_text("1,200")
        days = await page.locator("tbody tr td:first-child").all_text_contents()
        await expect(chart.locator("[data-axis=first]")).to_have_text(days[0])
        await expect(chart.locator("[data-axis=last]")).to_have_text(days[-1])
        sent = chart.locator("[data-metric=sent]")
        delivered = chart.locator("[data-metric=delivered]")
        assert float(await sent.get_attribute("stroke-width") or 0) > float(
            await delivered.get_attribute("stroke-width") or 0
        )
        assert await delivered.get_attribute("stroke-dasharray")
