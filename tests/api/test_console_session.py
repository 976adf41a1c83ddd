"""Console sessions over HTTP: the cookie's flags, CSRF on every changing request, roles kept,
revocation and sign-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from helpers import assert_problem, create_key


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
