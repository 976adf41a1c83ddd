"""openapi.yaml, fuzzed: every operation, with requests generated from the spec (schemathesis).

A real server, seeded (a channel config, a published event with a message, a triggered message,
a profile, a fatigue rule, an export flow, a test profile) so that the generated requests reach
more than 404s. With the admin key, every answer must be: no server error, a documented status
with a body matching its schema, and no valid request refused. A request valid by the spec may
only be refused for what exists: 404 (the path's resource), 409 (a conflict with what is
stored) or 422 (a referenced configuration, the event's declared fields), each where the
operation documents it; 400 means invalid by the spec. Deterministic (derandomized, no example
database) and bounded in examples per operation; on both engines, fewer examples on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import ADMIN_KEY
from helpers import live_event, trigger

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
EXAMPLES = {"sqlite": 20, "postgresql": 3}  # per operation (83): about 30 s + 15 s
# Statuses a valid request may still get are those its operation documents, but 400 ("invalid
# by the spec"), 413 and 415 (a generated body is neither too large nor of another media type)
# and 5xx (a failure of its own).
NOT_FOR_VALID = ("400", "413", "415")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]


def _fatigue_periods() -> st.SearchStrategy[str]:
    """openapi.yaml's `fatigue-period` format: an ISO 8601 duration, 0 < d <= 366 days."""
    return st.one_of(
        st.integers(1, 366).map("P{}D".format),
        st.integers(1, 52).map("P{}W".format),
        st.integers(1, 366 * 24).map("PT{}H".format),
        st.integers(1, 366 * 86400).map("PT{}S".format),
        st.builds("P{}DT{}H{}M".format, st.integers(0, 365), st.integers(0, 23), st.integers(1, 9)),
    )


def _export_schedules() -> st.SearchStrategy[str]:
    """openapi.yaml's `export-schedule` format: no weeks, from one minute to 3660 days."""
    return st.one_of(
        st.integers(1, 3660).map("P{}D".format),
        st.integers(1, 3660 * 24).map("PT{}H".format),
        st.integers(1, 3660 * 1440).map("PT{}M".format),
        st.builds("P{}DT{}H".format, st.integers(0, 3659), st.integers(1, 23)),
    )


def _events_cursors() -> st.SearchStrategy[str]:
    """openapi.yaml's `events-cursor` format: a `next_cursor` of the latest-events list (its
    shape; one of no listing is a 422, core/event_cursor.py)."""
    payload = st.builds(
        "1.{}.{}.{}".format,
        st.integers(946_684_800_000_000, 32_503_680_000_000_000),  # 2000 to 3000, in us
        st.integers(1, 2**63 - 1),
        st.text("0123456789abcdef", min_size=16, max_size=16),
    )
    return payload.map(lambda p: base64.urlsafe_b64encode(p.encode()).rstrip(b"=").decode())


def _profiles_cursors() -> st.SearchStrategy[str]:
    """openapi.yaml's `profiles-cursor` format: a `next_cursor` of the profiles list (its shape;
    one of no listing is a 422, core/profile_cursor.py)."""
    payload = st.builds(
        "p1.{}.{}".format,
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}", fullmatch=True),
        st.text("0123456789abcdef", min_size=16, max_size=16),
    )
    return payload.map(lambda p: base64.urlsafe_b64encode(p.encode()).rstrip(b"=").decode())


schemathesis.openapi.format("fatigue-period", _fatigue_periods())
schemathesis.openapi.format("events-cursor", _events_cursors())
schemathesis.openapi.format("profiles-cursor", _profiles_cursors())
schemathesis.openapi.format("export-schedule", _export_schedules())


def _acceptance_config(path: Path) -> SchemathesisConfig:
    """Per operation, the statuses a valid request may get: 2xx and its documented 3xx/4xx
    answers that depend on what exists or on the key (404, 409, 422; 401, 403, 429)."""
    spec = yaml.safe_load(path.read_text())
    operations = []
    for route, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            documented = [str(code) for code in operation["responses"]]
            allowed = ["2xx"] + [
                code for code in documented if code not in NOT_FOR_VALID and code[0] in "34"
            ]
            operations.append(
                {
                    "include-name": [f"{method.upper()} {route}"],
                    "checks": {"positive_data_acceptance": {"expected-statuses": allowed}},
                }
            )
    # No NUL in generated strings: openapi.yaml refuses them everywhere (a 400 naming the field).
    return SchemathesisConfig.from_dict(
        {"generation": {"allow-x00": False}, "operations": operations}
    )


async def _seed(server: Any, smtp: Any, data_dir: Path) -> dict[str, dict[str, str]]:
    """What exists, by path parameter, for the paths that name it (longest prefix first)."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    sent = await trigger(admin, event_id)
    pkey = sent["href"].rsplit("/", 1)[1]
    profile = {"email": "ada@example.org", "first_name": "Ada"}
    seeded = [
        await admin.put("/api/v1/profiles/ada", json=profile),
        await admin.post(
            "/api/v1/fatigue-rules",
            json={"name": "weekly", "channel": "all", "max_messages": 5, "period": "P7D"},
        ),
        await admin.post(
            "/api/v1/export-flows",
            json={
                "name": "lake",
                "format": "json",
                "destination": {"type": "local", "path": str(data_dir / "exports")},
            },
        ),
        await admin.put(
            "/api/v1/test-profiles/qa", json={"eventId": event_id, "ctx": {"firstName": "Q"}}
        ),
        await admin.post(
            "/api/v1/denylist",
            json={"channel": "email", "address": "spam@example.org", "reason": "complaint"},
        ),
    ]
    for r in seeded:
        assert r.status_code in (200, 201), r.text
    common = {"eventId": event_id, "PKey": pkey, "channel": "email"}
    return {
        "/api/v1/channel-configs/": {**common, "name": "mail"},
        "/api/v1/fatigue-rules/": {**common, "name": "weekly"},
        "/api/v1/export-flows/": {**common, "name": "lake"},
        "/api/v1/test-profiles/": {**common, "name": "qa"},
        "/api/v1/templates/": {**common, "name": "base"},
        "/api/v1/profiles/": {**common, "profile_id": "ada"},
        "/api/v1/denylist/": {**common, "address": "spam@example.org"},
        "/api/v1/messages/": {**common, "version": "1"},
        "": common,
    }


def _known(path: str, seeded: dict[str, dict[str, str]], names: set[str]) -> dict[str, str]:
    for prefix, values in seeded.items():
        if path.startswith(prefix):
            return {k: v for k, v in values.items() if k in names}
    return {}


def _fuzz_operation(
    operation: Any, base_url: str, known: dict[str, str], examples: int
) -> tuple[list[str], int]:
    """The disagreements with the spec, and the number of cases run."""
    failures: list[str] = []
    cases: list[None] = []
    checks = CHECKS
    strategies = [operation.as_strategy()]
    if known:  # half on what exists, half on generated names (which mostly answer 404)
        strategies.append(operation.as_strategy(path_parameters=known))

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        cases.append(None)
        response = case.call(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        )
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.append(
                    f"{operation.label}: {failure.title} ({response.status_code} "
                    f"{response.text[:300]!r}) for {case.as_curl_command()}"
                )

    run()
    return failures, len(cases)


@pytest.mark.server_settings(auth_failure_rate_limit=None, trigger_rate_limit=None)
async def test_every_operation_holds_to_the_spec_under_fuzzing(
    server: Any, smtp: Any, data_dir: Path
) -> None:
    seeded = await _seed(server, smtp, data_dir)
    schema = schemathesis.openapi.from_path(str(SPEC_PATH), config=_acceptance_config(SPEC_PATH))
    engine = "postgresql" if server.settings.database_url.startswith("postgresql") else "sqlite"
    failures: list[str] = []
    operations = cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        known = _known(operation.path, seeded, names)
        found, ran = await asyncio.to_thread(
            _fuzz_operation, operation, server.base_url, known, EXAMPLES[engine]
        )
        failures += found
        operations += 1
        cases += ran
    print(f"{engine}: {operations} operations, {cases} cases, {len(failures)} failures")
    assert operations >= 80
    assert not failures, f"{len(failures)} answers disagree with openapi.yaml:\n" + "\n".join(
        failures
    )
