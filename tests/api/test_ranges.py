"""Numbers and durations out of range are 400s naming their field, never 500s or silent floats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import live_event, wait_status
from txmsg.core.json_numbers import RANGE_TEXT

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
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
    # One too long for a double (the JSON parser refuses it) is named as well.
    longest = b'{"email": "a@example.org", "ctx": {"n": -' + b"9" * 400 + b"}}"
    r = await server.admin.post(
        f"/rest/mc/{event_id}", content=longest, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0] == {"field": "ctx.n", "pointer": "/ctx/n", "detail": RANGE_TEXT}
    # A ctx nested 1,000 levels deep, read exactly for its digits: named, as without them.
    deep = (
        b'{"email": "a@example.org", "ctx": {"firstName": "A", "n": '
        + b"[" * 1000
        + b"1" * 19
        + b"]" * 1000
        + b"}}"
    )
    r = await server.admin.post(
        f"/rest/mc/{event_id}", content=deep, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0] == {
        "field": "ctx",
        "pointer": "/ctx",
        "detail": "is nested too deeply",
    }
    # The largest 64-bit integer, and long digit runs in strings, are kept exactly.
    big = 2**63 - 1
    r = await server.admin.post(
        f"/rest/mc/{event_id}",
        json={"email": "a@example.org", "ctx": {"firstName": "A", "n": big, "s": "9" * 40}},
    )
    assert r.status_code == 201, r.text
    await wait_status(server.admin, r.json()["href"], "processed")


@pytest.mark.parametrize(
    ("params", "field", "status"),
    [
        ({"to": "0001-01-05"}, "to", 400),  # the default `from`, 29 days earlier, is before 1
        ({"from": "1999-12-31", "to": "2000-01-02"}, "from", 400),
        ({"to": "9999-12-31"}, "to", 400),
        # Each day in range, the pair not: a 422 (a schema cannot compare two parameters).
        ({"from": "2026-01-01", "to": "2027-01-02"}, "from", 422),  # more than 366 days
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from", 422),
    ],
)
async def test_report_days_out_of_range_are_refused(
    server, params: dict[str, str], field: str, status: int
) -> None:
    r = await server.admin.get("/api/v1/reports", params={"tag": "spring", **params})
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["field"] == field
    bounds = {"tag": "spring", "from": "2000-01-01", "to": "2000-12-31"}
    r = await server.admin.get("/api/v1/reports", params=bounds)  # days in range: on to the tag
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("since", ["1999-12-31T23:59:59Z", "9999-01-01T00:00:00Z"])
async def test_a_suppression_date_out_of_range_is_a_400(server, since: str) -> None:
    for path in ("/api/v1/suppressions", "/api/v1/suppressions.csv"):
        r = await server.admin.get(path, params={"since": since})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["field"] == "since"
    r = await server.admin.get("/api/v1/suppressions", params={"since": "2000-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("field", ["scheduled", "expiration"])
@pytest.mark.parametrize("when", ["1999-12-31T23:59:59Z", "9999-12-31T00:00:00Z", "0001-01-01"])
async def test_trigger_dates_out_of_range_are_400s(server, smtp, field: str, when: str) -> None:
    event_id = await live_event(server.admin, smtp)
    body = {"email": "a@example.org", "ctx": {"firstName": "A"}, field: when}
    r = await server.admin.post(f"/rest/mc/{event_id}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


def _request_schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema a request carries (parameters and bodies), `$ref`s followed, by where."""

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            found: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                found = found[part]
            node = found
        return node

    def walk(node: Any, where: str, depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(node, dict) or depth > 12:
            return
        node = resolve(node)
        yield where, node
        for name, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{where}.{name}", depth + 1)
        for key in ("items", "additionalProperties"):
            yield from walk(node.get(key), f"{where}[]", depth + 1)
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(key, []):
                yield from walk(sub, where, depth + 1)

    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            for raw in [*item.get("parameters", []), *op.get("parameters", [])]:
                param = resolve(raw)
                where = f"{method.upper()} {path} {param['name']}"
                yield where, {**resolve(param.get("schema", {})), "_param": param}
                yield from walk(param.get("schema"), where)
            for content in resolve(op.get("requestBody", {})).get("content", {}).values():
                yield from walk(content.get("schema"), f"{method.upper()} {path} body")


def test_every_number_and_date_a_request_takes_has_a_stated_range() -> None:
    spec = yaml.safe_load(SPEC_PATH.read_text("utf-8"))
    unbounded: list[str] = []
    for where, schema in _request_schemas(spec):
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        if schema.get("readOnly"):
            continue
        if {"integer", "number"} & set(types) and not {"minimum", "maximum"} <= set(schema):
            unbounded.append(f"{where}: a number without minimum and maximum")
        described = schema.get("_param", {}).get("description", "")
        if (
            schema.get("format") in ("date", "date-time")
            and "_param" in schema
            and ("2000 and 9000" not in described)
        ):
            unbounded.append(f"{where}: a date whose description states no range")
    assert not unbounded, "\n".join(unbounded)


async def test_an_integer_past_64_bits_in_a_bounded_field_states_no_other_range(
    server, smtp
) -> None:
    """A channel cap's `per_second` (1 to 1,000,000) past 64 bits is named, and its problem
    says it is out of range without giving a range the field's own contradicts."""
    await live_event(server.admin, smtp)
    huge = b'{"rate_limit": {"per_second": 1180591620717411303424}}'
    r = await server.admin.patch(
        "/api/v1/channel-configs/mail", content=huge, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert (error["field"], error["detail"]) == ("rate_limit.per_second", RANGE_TEXT), error
    assert not any(char.isdigit() for char in error["detail"].replace("64", "")), error
    r = await server.admin.get("/api/v1/channel-configs/mail")
    assert r.json()["rate_limit"] is None, r.text  # nothing was changed
