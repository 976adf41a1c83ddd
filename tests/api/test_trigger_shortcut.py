"""The trigger API's shortcut past Starlette's routing answers exactly as the routed endpoint.

Over real HTTP every `POST /rest/mc/{eventId}` takes the shortcut (txmsg.api.application). The
same app served under a root path takes Starlette's router and middleware to the same endpoint:
the two must agree on every answer, errors included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conftest import ADMIN_KEY
from helpers import assert_problem, create_key, live_event

ROOT = "/base"


@pytest_asyncio.fixture
async def routed(server) -> AsyncIterator[httpx.AsyncClient]:
    """The running app called in process under a root path: Starlette's routing, no shortcut."""
    transport = httpx.ASGITransport(app=server.app, root_path=ROOT, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://test{ROOT}") as client:
        yield client


class CountingStack:
    """Stands in for Starlette's middleware stack and counts the requests that reach it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


def _shape(r: httpx.Response) -> tuple[int, str, Any]:
    body = r.json()
    if r.status_code == 201:  # fresh keys and clocks: compare the fields' presence and kinds
        body = {
            k: (type(v).__name__ if k in ("PKey", "href", "eventDate", "expiration") else v)
            for k, v in body.items()
        }
    return r.status_code, r.headers["content-type"], body


async def test_shortcut_and_router_answer_alike(server, smtp, routed) -> None:
    event_id = await live_event(server.admin, smtp)
    trigger_key = await create_key(server.admin, "trigger")
    marketer_key = await create_key(server.admin, "marketer")
    stack = CountingStack(server.app.middleware_stack)
    server.app.middleware_stack = stack
    good = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    cases: list[tuple[str, str | None, bytes, dict[str, str]]] = [
        (event_id, trigger_key, httpx.Request("POST", "/", json=good).read(), {}),
        (event_id, ADMIN_KEY, b'{"email": "ada@example.org", "ctx": {}}', {}),  # a field missing
        (event_id, trigger_key, b'{"email": "not an address", "ctx": {"firstName": "A"}}', {}),
        (event_id, trigger_key, b"{not json", {}),
        (event_id, None, b"{}", {}),
        (event_id, "wrong-key", b"{}", {}),
        (event_id, marketer_key, b"{}", {}),
        ("EVTnoSuchEvent", trigger_key, b"{}", {}),
        (event_id, trigger_key, b"x" * (server.settings.max_body_bytes + 1), {}),
        (event_id, trigger_key, b"{}", {"Idempotency-Key": "k" * 300}),
    ]
    statuses = []
    async with server.client() as direct:
        for path_id, key, body, extra in cases:
            headers = {"Content-Type": "application/json", **extra}
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            a = await direct.post(f"/rest/mc/{path_id}", content=body, headers=headers)
            b = await routed.post(f"/rest/mc/{path_id}", content=body, headers=headers)
            assert _shape(a) == _shape(b), (path_id, key, body[:40], a.text, b.text)
            assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
            statuses.append(a.status_code)
        assert statuses == [201, 422, 400, 400, 401, 401, 403, 404, 413, 400]  # 422: ctx refused

        # A replay by either path: the first answer again (PostgreSQL's JSONB may order its
        # keys otherwise), marked, with its own length.
        replay = {"Authorization": f"Bearer {trigger_key}", "Idempotency-Key": "order-1"}
        first = await direct.post(f"/rest/mc/{event_id}", json=good, headers=replay)
        answers = [
            await direct.post(f"/rest/mc/{event_id}", json=good, headers=replay),
            await routed.post(f"/rest/mc/{event_id}", json=good, headers=replay),
        ]
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        for r in answers:
            assert (r.status_code, r.json()) == (201, first.json())
            assert r.headers["idempotent-replayed"] == "true"
            assert r.headers["content-length"] == str(len(r.content))
        # Only the routed calls went through Starlette's stack.
        assert stack.paths == [f"{ROOT}/rest/mc/{c[0]}" for c in cases] + [
            f"{ROOT}/rest/mc/{event_id}"
        ]

        # Other shapes of the path are Starlette's to answer, as before.
        stack.paths.clear()
        r = await direct.post(f"/rest/mc/{event_id}/", json=good, follow_redirects=False)
        assert r.status_code in (307, 404, 405), r.status_code
        assert_problem(await direct.post("/rest/mc/", json=good), 404)
        assert_problem(await direct.get(f"/rest/mc/{event_id}"), 405)
        assert len(stack.paths) == 3


async def test_an_unexpected_error_is_a_logged_500_problem(server, smtp, routed, caplog) -> None:
    event_id = await live_event(server.admin, smtp)
    context = server.app.state.txmsg

    async def broken(_event: Any) -> Any:
        raise RuntimeError("the store went away")

    original = context.enqueue
    context.enqueue = broken
    try:
        with caplog.at_level(logging.ERROR):
            async with server.client(ADMIN_KEY) as direct:
                a = await direct.post(
                    f"/rest/mc/{event_id}",
                    json={"email": "a@example.org", "ctx": {"firstName": "A"}},
                )
            b = await routed.post(
                f"/rest/mc/{event_id}",
                json={"email": "a@example.org", "ctx": {"firstName": "A"}},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
    finally:
        context.enqueue = original
    for r in (a, b):
        body = assert_problem(r, 500)
        assert "store went away" not in r.text  # the reason is logged, not answered
        assert body["title"] == "Internal Server Error"
    # The shortcut re-raises like Starlette's ServerErrorMiddleware: the server logs it.
    logged = [r for r in caplog.records if r.exc_info and "store went away" in str(r.exc_info[1])]
    assert logged, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_other_methods_on_the_trigger_path_are_405(server, smtp, method: str) -> None:
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.request(method, f"/rest/mc/{event_id}")
    assert_problem(r, 405)
