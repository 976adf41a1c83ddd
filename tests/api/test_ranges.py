"""Numbers and durations out of range are 400s naming their field, never 500s or silent floats."""

from __future__ import annotations

import pytest

from helpers import live_event, wait_status
from txmsg.core.json_numbers import RANGE_TEXT

RULE = {"name": "weekly", "channel": "email", "max_messages": 3, "period": "P7D"}
HUGE_PERIODS = [
    "P883W6283640038824D",
    "P99999999999999D",
    "PT99999999999999999999S",
    "P" + "9" * 5000 + "D",
]


@pytest.mark.parametrize("period", HUGE_PERIODS)
async def test_fatigue_periods_out_of_range_are_400s(server, period: str) -> None:
    r = await server.admin.post("/api/v1/fatigue-rules", json={**RULE, "period": period})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "period"
    r = await server.admin.post("/api/v1/fatigue-rules", json=RULE)
    assert r.status_code == 201, r.text
    r = await server.admin.patch("/api/v1/fatigue-rules/weekly", json={"period": period})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "period"


@pytest.mark.parametrize("limit", ["9" * 5000, "0" * 5000 + "5", "\uff11\uff10", "1001", "0", "-1"])
async def test_a_limit_out_of_range_is_a_400(server, limit: str) -> None:
    r = await server.admin.get("/api/v1/message-export/records", params={"limit": limit})
    if limit == "0" * 5000 + "5":  # five, with leading zeros
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "limit"


async def test_a_30_digit_integer_in_ctx_is_refused_not_rounded(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    body = (
        b'{"email": "a@example.org", "ctx": {"firstName": "A", "ids": [1, '
        b"123456789012345678901234567890]}}"
    )
    r = await server.admin.post(
        f"/rest/mc/{event_id}", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "ctx.ids[1]"
    assert error["detail"] == RANGE_TEXT
    # The largest 64-bit integer, and long digit runs in strings, are kept exactly.
    big = 2**63 - 1
    r = await server.admin.post(
        f"/rest/mc/{event_id}",
        json={"email": "a@example.org", "ctx": {"firstName": "A", "n": big, "s": "9" * 40}},
    )
    assert r.status_code == 201, r.text
    await wait_status(server.admin, r.json()["href"], "processed")
