"""Profiles over HTTP: upsert, read, erase, and streamed NDJSON and CSV imports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from helpers import assert_problem, forbid_server_errors


async def test_profile_upsert_read_delete(server) -> None:
    admin = forbid_server_errors(server.admin)
    body = {
        "email": "Ada@Example.ORG",
        "mobilePhone": "+33 6 12 34 56 78",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "language": "fr-CA",
        "attributes": {"tier": "gold", "max_mails": 2},
        "email_opt_out": False,
    }
    r = await admin.put("/api/v1/profiles/p-1", json=body)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["email"] == "Ada@example.org"
    assert stored["mobilePhone"] == "+33612345678"
    assert stored["language"] == "fr-ca"
    assert stored["sms_opt_out"] is False
    r = await admin.put("/api/v1/profiles/p-1", json={"email": "ada@example.org"})
    assert r.status_code == 200, r.text
    assert r.json()["first_name"] is None  # PUT replaces the whole profile
    assert (await admin.get("/api/v1/profiles/p-1")).json()["email"] == "ada@example.org"

    assert_problem(await admin.put("/api/v1/profiles/p-2", json={"email": "nope"}), 400, "email")
    assert_problem(
        await admin.put("/api/v1/profiles/p-2", json={"mobilePhone": "12"}), 400, "mobilePhone"
    )
    assert_problem(
        await admin.put("/api/v1/profiles/p-2", json={"attributes": []}), 400, "attributes"
    )
    assert_problem(await admin.put("/api/v1/profiles/p-2", json={"age": 3}), 400, "age")
    assert_problem(
        await admin.put("/api/v1/profiles/p-2", json={"email_opt_out": "yes"}),
        400,
        "email_opt_out",
    )
    assert_problem(await admin.put("/api/v1/profiles/bad id", json={}), 400, "profile_id")
    assert (await admin.get("/api/v1/profiles/p-2")).status_code == 404

    r = await admin.delete("/api/v1/profiles/p-1")
    assert r.status_code == 204
    assert_problem(await admin.get("/api/v1/profiles/p-1"), 404)
    assert_problem(await admin.delete("/api/v1/profiles/p-1"), 404)


async def _chunks(data: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    # Odd-sized chunks: rows and multi-byte characters are cut anywhere.
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_large_ndjson_import_with_bad_rows(server) -> None:
    admin = forbid_server_errors(server.admin)
    await admin.put("/api/v1/profiles/u00005", json={"email": "old@example.org"})
    lines = []
    for i in range(20_000):
        row = {"profile_id": f"u{i:05d}", "email": f"user{i}@example.org", "first_name": "Zoë"}
        if i % 1000 == 999:
            row["email"] = "not-an-address"
        lines.append(orjson.dumps(row))
    lines.insert(10, b"{broken json")
    lines.insert(20, b"[1, 2]")
    lines.append(b'{"email": "no-id@example.org"}')
    data = b"\n".join(lines) + b"\n"
    # Beyond the JSON body limit: an import is streamed, not read whole.
    assert len(data) > server.settings.max_body_bytes
    r = await admin.post(
        "/api/v1/profiles:import",
        content=_chunks(data),
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 20_000 - 20 - 1
    assert report["updated"] == 1
    assert report["rejected"] == 20 + 3
    first = report["rejections"][0]
    assert first == {"line": 11, "field": "body", "detail": first["detail"]}
    assert "JSON" in first["detail"]
    assert report["rejections"][1]["line"] == 21
    assert report["rejections"][2]["field"] == "email"
    assert len(report["rejections"]) == 20
    got = (await admin.get("/api/v1/profiles/u00005")).json()
    assert got["email"] == "user5@example.org" and got["first_name"] == "Zoë"
    assert (await admin.get("/api/v1/profiles/u00999")).status_code == 404


async def test_csv_import(server) -> None:
    admin = forbid_server_errors(server.admin)
    data = (
        "\ufeffprofile_id,email,first_name,language,email_opt_out,attributes\r\n"
        'c1,c1@example.org,"Smith, ""Jo""",fr,yes,"{""tier"": ""gold""}"\r\n'
        'c2,c2@example.org,"two\nlines",,0,\r\n'
        "c3,bad-address,X,,,\r\n"
        "c4,c4@example.org,X,,maybe,\r\n"
        "c5,c5@example.org\r\n"
        "c6,c6@example.org,Six,de,false,\r\n"
    ).encode()
    r = await admin.post(
        "/api/v1/profiles:import", content=data, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["updated"], report["rejected"]) == (3, 0, 3)
    assert [(x["line"], x["field"]) for x in report["rejections"]] == [
        (5, "email"),
        (6, "email_opt_out"),
        (7, "body"),
    ]
    c1 = (await admin.get("/api/v1/profiles/c1")).json()
    assert c1["first_name"] == 'Smith, "Jo"'
    assert c1["email_opt_out"] is True and c1["attributes"] == {"tier": "gold"}
    assert (await admin.get("/api/v1/profiles/c2")).json()["first_name"] == "two\nlines"

    bad_header = b"profile_id,age\r\nx,3\r\n"
    r = await admin.post(
        "/api/v1/profiles:import", content=bad_header, headers={"content-type": "text/csv"}
    )
    assert_problem(r, 400)
    # A header row that cannot be read fails the import too: no row after it is read as one.
    for unreadable, why in [
        (b"\xffbad\nprofile_id,email\ncx1,cx1@example.org\n", "not valid UTF-8"),
        (b'"profile_id,email\ncx2,cx2@example.org\n', "unterminated quoted field"),
        (b'profile_id,"email"x\ncx3,cx3@example.org\n', "not valid CSV"),
    ]:
        r = await admin.post(
            "/api/v1/profiles:import", content=unreadable, headers={"content-type": "text/csv"}
        )
        problem = assert_problem(r, 400, "body")
        assert "the CSV header row (line 1)" in problem["detail"] and why in problem["detail"]
    for absent in ("cx1", "cx2", "cx3"):
        assert (await admin.get(f"/api/v1/profiles/{absent}")).status_code == 404
    r = await admin.post(
        "/api/v1/profiles:import", content=b"x", headers={"content-type": "text/plain"}
    )
    assert_problem(r, 415)


async def test_blank_is_white_space_as_the_spec_counts_it(server) -> None:
    """A name must not be blank (`pattern: "\\S"`): white space is what JSON Schema's regular
    expressions count as such (ECMA-262), not Python's: U+001C is text there, U+FEFF space."""
    admin = server.admin
    for text in ("\x1c", "\x85", "Ada\u2003"):
        r = await admin.put("/api/v1/profiles/p-1", json={"first_name": text})
        assert r.status_code in (200, 201), r.text
        assert (await admin.get("/api/v1/profiles/p-1")).json()["first_name"] == text
    for text in ("", " \t", "\ufeff", "\u3000\u00a0"):
        r = await admin.put("/api/v1/profiles/p-1", json={"first_name": text})
        assert_problem(r, 400, "first_name")


async def test_csv_columns_in_any_case_and_emails_with_spaces(server) -> None:
    admin = forbid_server_errors(server.admin)
    csv_type = {"content-type": "text/csv"}
    data = b" Profile_ID ,Email, MOBILEPHONE,First_Name\r\nk1, k1@example.org ,+33612345678,Kay\r\n"
    r = await admin.post("/api/v1/profiles:import", content=data, headers=csv_type)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["rejected"]) == (1, 0), r.text
    k1 = (await admin.get("/api/v1/profiles/k1")).json()
    assert (k1["email"], k1["mobilePhone"], k1["first_name"]) == (
        "k1@example.org",
        "+33612345678",
        "Kay",
    )

    # An unknown column is named, with its place, and told where custom values go.
    r = await admin.post(
        "/api/v1/profiles:import", content=b"profile_id,email,age\r\nk2,,3\r\n", headers=csv_type
    )
    problem = assert_problem(r, 400, "columns[2]")
    [error] = problem["errors"]
    assert "'age'" in error["detail"] and "attributes" in error["detail"]
    # Two columns that are one once folded: both named.
    r = await admin.post(
        "/api/v1/profiles:import",
        content=b"profile_id,email, EMAIL\r\nk3,a@example.org,b@example.org\r\n",
        headers=csv_type,
    )
    problem = assert_problem(r, 400, "columns[2]")
    assert "'EMAIL'" in problem["detail"] and "columns[1] 'email'" in problem["detail"]
    r = await admin.post(
        "/api/v1/profiles:import", content=b"email\r\nx@example.org\r\n", headers=csv_type
    )
    assert_problem(r, 400, "columns")
    for absent in ("k2", "k3"):
        assert (await admin.get(f"/api/v1/profiles/{absent}")).status_code == 404
