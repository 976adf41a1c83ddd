"""Query and path parameters read one way by every endpoint: integers in ASCII digits only
(`str.isdigit` also took `٣`), each query parameter given once (the last one won silently)."""

from __future__ import annotations

from typing import Any

from helpers import assert_problem, live_event, trigger
from txmsg.testing import FakeSMTPServer

ARABIC_THREE = "\u0663"  # str.isdigit() is true for it, and int() reads it as 3


async def test_integers_are_ascii_digits_and_parameters_come_once(
    server: Any, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    await trigger(admin, event_id)
    latest = f"/api/v1/events/{event_id}"
    assert (await admin.get(latest, params={"limit": "3"})).status_code == 200
    assert_problem(await admin.get(latest, params={"limit": ARABIC_THREE}), 400, "limit")
    assert_problem(await admin.get(latest, params={"limit": ""}), 400, "limit")
    twice = [("limit", "3"), ("limit", "5")]
    assert_problem(await admin.get(latest, params=twice), 400, "limit")
    assert_problem(
        await admin.get(latest, params=[("status", "pending"), ("status", "processed")]),
        400,
        "status",
    )
    for path in ("/api/v1/suppressions", "/api/v1/message-export/records"):
        assert (await admin.get(path, params={"limit": "3"})).status_code == 200, path
        assert_problem(await admin.get(path, params={"limit": ARABIC_THREE}), 400, "limit")
        assert_problem(await admin.get(path, params=twice), 400, "limit")
    version = f"/api/v1/messages/{event_id}/versions/"
    assert (await admin.get(version + "1")).status_code == 200
    assert_problem(await admin.get(version + "\u0661"), 400, "version")
