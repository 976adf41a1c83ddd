"""Console sessions over HTTP: the cookie's flags, CSRF on every changing request, roles kept,
revocation, rotation and sign-out, and what the cookie shows of its key (neither the key nor
its hash)."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from helpers import assert_problem, create_key
from txmsg.core.signing import Signer
from txmsg.store.keys import hash_key


async def _sign_in(client: httpx.AsyncClient, key: str) -> str:
    page = await client.get("/console")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    csrf = client.cookies["txmsg_csrf"]
    r = await client.post("/console/session", json={"api_key": key})
    assert_problem(r, 403)  # no CSRF header
    r = await client.post("/console/session", json={"api_key": key}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    cookies = {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}
    session = cookies["txmsg_session"]
    assert "HttpOnly" in session and "SameSite=strict" in session and key not in session
    # The CSRF cookie the session is bound to lasts as long as the session (a browser
    # restarted meanwhile keeps both).
    assert f"txmsg_csrf={csrf};" in cookies["txmsg_csrf"]
    assert "Max-Age=28800" in cookies["txmsg_csrf"] and "Max-Age=28800" in session
    return csrf


def _cookie_shows(cookie: str) -> str:
    """Everything a holder of the cookie reads from it: the value, and its signed payload
    decoded (it is signed, not encrypted)."""
    payload = cookie.partition(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return cookie + "\n" + decoded.decode("utf-8", "replace")


def _assert_hides(client: httpx.AsyncClient, key: str) -> None:
    """The session cookie shows neither the key nor its hash (as stored in api_keys), in any
    case."""
    shown = _cookie_shows(client.cookies["txmsg_session"]).lower()
    digest = hash_key(key)
    assert key.lower() not in shown and digest not in shown
    assert digest[:16] not in shown  # not even a part of it


async def test_the_cookie_shows_neither_the_key_nor_its_hash_and_revoking_ends_it(
    server: Any,
) -> None:
    """A cookie's holder learns nothing to guess the key from offline: not the hash of a
    stored key, nor of the installation's admin key (chosen by an admin, maybe weak)."""
    r = await server.admin.post("/api/v1/keys", json={"role": "marketer", "label": "ops"})
    key, key_id = r.json()["key"], r.json()["id"]
    admin_key = server.settings.admin_key
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as client,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as admin,
    ):
        await _sign_in(client, key)
        _assert_hides(client, key)
        await _sign_in(admin, admin_key)
        _assert_hides(admin, admin_key)
        for browser, role in ((client, "marketer"), (admin, "admin")):
            r = await browser.get("/console/session")
            assert r.status_code == 200 and r.json()["role"] == role
            assert hash_key(key) not in r.text and hash_key(admin_key) not in r.text
        assert (await admin.get("/api/v1/keys")).status_code == 200
        # Revoking the key ends its session at once; the admin key's goes on.
        assert (
            await admin.delete(f"/api/v1/keys/{key_id}", headers=_csrf(admin))
        ).status_code == 204
        r = await client.get("/api/v1/templates")
        assert "sign in again" in assert_problem(r, 401)["detail"]
        assert (await admin.get("/api/v1/templates")).status_code == 200


def _csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["txmsg_csrf"]}


async def test_rotating_the_key_ends_the_old_secrets_sessions_after_its_grace(
    server: Any,
) -> None:
    """As for the old secret as a bearer key: a session opened with it (before the rotation,
    or during its grace) lasts until the grace ends; one opened with the new secret goes on.
    No cookie shows a hash of either secret."""
    r = await server.admin.post("/api/v1/keys", json={"role": "marketer", "label": "console"})
    old_secret, key_id = r.json()["key"], r.json()["id"]
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as before,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as during,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as after,
    ):
        await _sign_in(before, old_secret)
        _assert_hides(before, old_secret)
        # 3 s: on a busy machine the requests after the rotation took longer than 1 s.
        r = await server.admin.post(f"/api/v1/keys/{key_id}/rotate", json={"grace_seconds": 3})
        assert r.status_code == 200, r.text
        new_secret = r.json()["key"]
        until = datetime.fromisoformat(r.json()["previous_secret_valid_until"])
        await _sign_in(during, old_secret)  # the old secret still signs in during its grace
        await _sign_in(after, new_secret)
        for browser, secret in ((during, old_secret), (after, new_secret)):
            _assert_hides(browser, secret)
            _assert_hides(browser, new_secret if secret == old_secret else old_secret)
        for browser in (before, during, after):
            assert (await browser.get("/api/v1/templates")).status_code == 200
        await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.05)
        for browser in (before, during):
            r = await browser.get("/api/v1/templates")
            assert "sign in again" in assert_problem(r, 401)["detail"]
        assert (await after.get("/api/v1/templates")).status_code == 200
        # A rotation without grace ends the new secret's sessions at once.
        r = await server.admin.post(f"/api/v1/keys/{key_id}/rotate", json={"grace_seconds": 0})
        assert r.status_code == 200, r.text
        assert_problem(await after.get("/api/v1/templates"), 401)


async def test_a_cookie_that_held_the_keys_hash_is_refused(server: Any) -> None:
    """A cookie of the former form (the key's hash, its end, the CSRF token and the session's
    id, signed with the same server secret) opens no session: its holder signs in again."""
    key = await create_key(server.admin, "marketer")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        csrf = await _sign_in(client, key)
        secret = await server.app.state.txmsg.secrets.get("console-session")
        expires = str(int(time.time()) + 3600)
        former = Signer(secret).sign(hash_key(key), expires, csrf, "former-session-id")
        client.cookies.set("txmsg_session", former, domain="127.0.0.1")
        for request in (client.get("/console/session"), client.get("/api/v1/templates")):
            r = await request
            assert "sign in again" in assert_problem(r, 401)["detail"]
        r = await client.post(
            "/api/v1/event-configs", json={"eventId": "x"}, headers={"X-CSRF-Token": csrf}
        )
        assert_problem(r, 401)
        # Signing out with it is no error, and signing in again works.
        assert (await client.delete("/console/session", headers=_csrf(client))).status_code == 204
        await _sign_in(client, key)
        assert (await client.get("/api/v1/templates")).status_code == 200


async def test_a_session_acts_with_its_keys_role_and_needs_the_csrf_token(server: Any) -> None:
    marketer_key = await create_key(server.admin, "marketer")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        csrf = await _sign_in(client, marketer_key)
        r = await client.get("/console/session")
        assert r.status_code == 200 and r.json()["role"] == "marketer"
        assert (await client.get("/api/v1/event-configs")).status_code == 200
        assert_problem(await client.get("/api/v1/keys"), 403)  # admin only, as for the key
        body = {"eventId": "x", "label": "x", "channel": "email", "channel_config": "m"}
        # A changing request without the token is refused before anything else.
        r = await client.post("/api/v1/event-configs", json=body)
        assert_problem(r, 403)
        assert "CSRF" in r.json()["detail"]
        r = await client.post("/api/v1/event-configs", json=body, headers={"X-CSRF-Token": "wrong"})
        assert "CSRF" in assert_problem(r, 403)["detail"]
        r = await client.post("/api/v1/event-configs", json=body, headers={"X-CSRF-Token": csrf})
        assert "CSRF" not in assert_problem(r, 403)["detail"]  # the marketer's role now

        # A forged or altered cookie is no session.
        token = client.cookies["txmsg_session"]
        client.cookies.set("txmsg_session", token[:-2] + "xx", domain="127.0.0.1")
        assert_problem(await client.get("/console/session"), 401)
        client.cookies.set("txmsg_session", token, domain="127.0.0.1")

        # Signing out needs the token too, and ends the session.
        assert_problem(await client.delete("/console/session"), 403)
        r = await client.delete("/console/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert "txmsg_session" not in client.cookies
        assert_problem(await client.get("/api/v1/event-configs"), 401)
        # A copy of the cookie taken before is refused too: the server ended the session.
        client.cookies.set("txmsg_session", token, domain="127.0.0.1")
        r = await client.get("/api/v1/event-configs")
        assert "signed out" in assert_problem(r, 401)["detail"]
        # Signing in again opens a new session, which works.
        await _sign_in(client, marketer_key)
        assert (await client.get("/api/v1/event-configs")).status_code == 200


async def test_revoking_the_key_ends_its_sessions(server: Any) -> None:
    r = await server.admin.post("/api/v1/keys", json={"role": "admin", "label": "ops"})
    key, key_id = r.json()["key"], r.json()["id"]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        await _sign_in(client, key)
        assert (await client.get("/api/v1/keys")).status_code == 200
        assert (await server.admin.delete(f"/api/v1/keys/{key_id}")).status_code == 204
        assert_problem(await client.get("/api/v1/keys"), 401)
        r = await client.post(
            "/console/session",
            json={"api_key": "nope"},
            headers={"X-CSRF-Token": client.cookies["txmsg_csrf"]},
        )
        assert_problem(r, 401)


async def test_the_console_assets_are_served_from_the_package(server: Any) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = (await client.get("/console")).text
        assert "http://" not in page and "https://" not in page
        for name in ("console.js", "console.css"):
            r = await client.get(f"/console/assets/{name}")
            assert r.status_code == 200 and len(r.content) > 1000
            # Nothing fetched from another host (the browser test watches every request too).
            assert "https://" not in r.text and "http://" not in r.text.replace(
                "http://www.w3.org/2000/svg", ""
            )
        assert_problem(await client.get("/console/assets/..%2Fconsole.py"), 404)
        assert_problem(await client.get("/console/assets/index.html"), 404)


async def test_only_admin_and_marketer_keys_sign_in(server: Any) -> None:
    trigger_key = await create_key(server.admin, "trigger")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        await client.get("/console")
        csrf = client.cookies["txmsg_csrf"]
        r = await client.post(
            "/console/session", json={"api_key": trigger_key}, headers={"X-CSRF-Token": csrf}
        )
        assert "role 'trigger'" in assert_problem(r, 403)["detail"]
        assert "txmsg_session" not in client.cookies


async def test_server_secrets_and_the_database_file_are_kept_from_other_readers(
    server: Any,
) -> None:
    """The secret signing console sessions is sealed at rest (a copy of the database cannot
    sign an admin's session with the keys' hashes stored beside it), and the SQLite file is
    its owner's alone."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        await _sign_in(client, await create_key(server.admin, "marketer"))
    ctx = server.app.state.txmsg
    secret = await ctx.secrets.get("console-session")
    assert secret is not None

    def stored(conn: Any) -> list[str]:
        return [row[0] for row in conn.exec_driver_sql("SELECT value FROM server_secrets")]

    values = await ctx.db.read(stored)
    assert values and all(secret not in value for value in values)
    if ctx.db.is_sqlite:
        database = Path(make_url(ctx.db.url).database)
        for path in (database, Path(f"{database}-wal")):
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
