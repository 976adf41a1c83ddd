"""Profiles sharing an email: the one created first wins, file order within an import, and
the import answer warns of the duplicates it wrote."""

from __future__ import annotations

import orjson

from helpers import forbid_server_errors, trigger, wait_status
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer


def _ndjson(*rows: dict[str, str]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def test_within_one_import_the_first_row_wins(server, smtp: FakeSMTPServer) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation={"from": "email", "to": "email"})
    # Profile ids in the opposite order of the file: the file decides, not the ids.
    data = _ndjson(
        {"profile_id": "a-first", "email": "same@example.org", "first_name": "First"},
        {"profile_id": "z-second", "email": "Same@example.org", "first_name": "Second"},
        {"profile_id": "m-third", "email": "SAME@example.org", "first_name": "Third"},
    )
    r = await admin.post(
        "/api/v1/profiles:import", content=data, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    accepted = await trigger(admin, event, {"email": "same@example.org", "ctx": {}})
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "Hello First"


async def test_import_warns_of_duplicate_emails(server) -> None:
    admin = forbid_server_errors(server.admin)
    await put_profile(admin, "old", email="taken@example.org")
    rows = [
        {"profile_id": "n1", "email": "one@example.org"},
        {"profile_id": "n2", "email": "ONE@example.org"},  # line 2: same as line 1
        {"profile_id": "n3", "email": "Taken@example.org"},  # line 3: an existing profile's
        {"profile_id": "n1", "email": "one@example.org"},  # the same profile again: no warning
        {"profile_id": "old", "email": "taken@example.org"},  # keeps its email: no warning
        {"profile_id": "n4", "email": "four@example.org"},
    ]
    # Past one write batch (1,000 rows): a duplicate of a row in an earlier batch is found too.
    rows += [{"profile_id": f"f{i:04d}", "email": f"f{i}@example.org"} for i in range(1000)]
    rows.append({"profile_id": "late", "email": "four@example.org"})
    r = await admin.post(
        "/api/v1/profiles:import",
        content=_ndjson(*rows),
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rejected"] == 0
    warnings = {w["code"]: w for w in report["warnings"]}
    assert set(warnings) == {"duplicate_email_in_file", "duplicate_email_existing"}
    in_file = warnings["duplicate_email_in_file"]
    assert (in_file["count"], in_file["lines"]) == (2, [2, len(rows)])
    existing = warnings["duplicate_email_existing"]
    assert (existing["count"], existing["lines"]) == (1, [3])
    assert in_file["detail"].startswith("2 rows")

    clean = _ndjson({"profile_id": "solo", "email": "solo@example.org"})
    r = await admin.post(
        "/api/v1/profiles:import", content=clean, headers={"content-type": "application/x-ndjson"}
    )
    assert r.json()["warnings"] == [], r.text
