"""DKIM over HTTP: a signing configuration, its DNS records, signed mail and signed proofs."""

from __future__ import annotations

from dkim_support import ed25519_pem, rsa_pem, signed_headers, verify
from helpers import (
    assert_problem,
    create_key,
    create_sms_channel,
    forbid_server_errors,
    trigger,
    wait_status,
)
from profile_helpers import profile_event, put_profile
from txmsg.testing import FakeSMTPServer

BY_ID = {"from": "ctx.id", "to": "profile_id"}


async def test_signed_mail_and_proofs_verify_with_the_published_record(
    server, smtp: FakeSMTPServer
) -> None:
    admin = forbid_server_errors(server.admin)
    event = await profile_event(admin, smtp, reconciliation=BY_ID)
    pem = rsa_pem()
    r = await admin.patch(
        "/api/v1/channel-configs/mail",
        json={"dkim": {"domain": "Example.com.", "selector": "s2026", "private_key": pem}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["dkim"] == {
        "domain": "example.com",
        "selector": "s2026",
        "algorithm": "rsa-sha256",
        "private_key_set": True,
    }
    for answer in (r, await admin.get("/api/v1/channel-configs/mail")):
        assert "PRIVATE KEY" not in answer.text and "MII" not in answer.text

    r = await admin.get("/api/v1/channel-configs/mail/dns")
    assert r.status_code == 200, r.text
    dns = r.json()
    assert dns["dkim"]["name"] == "s2026._domainkey.example.com"
    assert dns["dkim"]["value"].startswith("v=DKIM1; k=rsa; p=MII")
    assert dns["spf"]["name"] == "example.com" and dns["spf"]["value"].startswith("v=spf1")
    assert dns["dmarc"]["name"] == "_dmarc.example.com"
    assert dns["dmarc"]["value"].startswith("v=DMARC1; p=none")
    records = {dns["dkim"]["name"]: dns["dkim"]["value"]}

    await put_profile(admin, "ada", email="ada@example.org", first_name="Ada")
    accepted = await trigger(admin, event, {"ctx": {"id": "ada"}})
    await wait_status(admin, accepted["href"], "processed")
    mail = (await smtp.wait_for(1))[0]
    assert verify(mail.data, records)
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
        signed_headers(mail.data)
    )
    assert not verify(mail.data.replace(b"Hello Ada", b"Hello Eve"), records)

    tester = {"eventId": event, "ctx": {}, "profile": {"first_name": "Tess"}}
    assert (await admin.put("/api/v1/test-profiles/tess", json=tester)).status_code == 201
    r = await admin.post(
        f"/api/v1/messages/{event}/proof",
        json={"test_profile": "tess", "addresses": ["qa@example.org"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "sent"
    proof = (await smtp.wait_for(2))[1]
    assert proof.message["X-Txmsg-Proof"] == "true"
    assert verify(proof.data, records)


async def test_dkim_configuration_errors_and_the_dns_of_other_channels(
    server, smtp: FakeSMTPServer, fake_twilio
) -> None:
    admin = forbid_server_errors(server.admin)
    base = {
        "name": "signed",
        "channel": "email",
        "from_email": "news@mail.example.com",
        "smtp": {"host": smtp.host, "port": smtp.port},
    }
    weak = {"domain": "example.com", "selector": "s1", "private_key": rsa_pem(1024)}
    r = await admin.post("/api/v1/channel-configs", json={**base, "dkim": weak})
    assert_problem(r, 422, "dkim.private_key")
    other = {"domain": "other.org", "selector": "s1", "private_key": ed25519_pem()}
    r = await admin.post("/api/v1/channel-configs", json={**base, "dkim": other})
    assert_problem(r, 422, "dkim.domain")  # two fields that do not align
    assert (await admin.get("/api/v1/channel-configs/signed")).status_code == 404

    good = {**other, "domain": "example.com"}
    r = await admin.post("/api/v1/channel-configs", json={**base, "dkim": good})
    assert r.status_code == 201, r.text
    assert r.json()["dkim"]["algorithm"] == "ed25519-sha256"
    dns = (await admin.get("/api/v1/channel-configs/signed/dns")).json()
    assert dns["dkim"]["value"].startswith("v=DKIM1; k=ed25519; p=")
    r = await admin.patch("/api/v1/channel-configs/signed", json={"from_email": "a@other.org"})
    assert_problem(r, 422, "from_email")  # the stored dkim.domain's word, not the spec's
    r = await admin.patch("/api/v1/channel-configs/signed", json={"dkim": None})
    assert r.status_code == 200 and r.json()["dkim"] is None
    assert (await admin.get("/api/v1/channel-configs/signed/dns")).json()["dkim"] is None

    await create_sms_channel(admin, fake_twilio, server.base_url)
    r = await admin.get("/api/v1/channel-configs/sms/dns")
    assert_problem(r, 404)
    assert_problem(await admin.get("/api/v1/channel-configs/nope/dns"), 404)
    marketer = server.client(await create_key(admin, "marketer"))
    assert (await marketer.get("/api/v1/channel-configs/signed/dns")).status_code == 403
