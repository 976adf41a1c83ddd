"""DKIM settings: keys and alignment checked at configuration, signatures dkimpy verifies."""

from __future__ import annotations

import pytest

from dkim_support import ed25519_pem, rsa_pem, signed_headers, verify
from txmsg.core.channel_config import parse_create, parse_update, public_view
from txmsg.core.dkim import SECRET_NAME, dkim_settings, dns_records
from txmsg.core.dkim_signer import DkimSigner
from txmsg.core.errors import DomainError
from txmsg.core.mime import Sender, build_email
from txmsg.core.timeutil import utcnow


def _body(**dkim: object) -> dict[str, object]:
    return {
        "name": "mail",
        "channel": "email",
        "from_email": "shop@mail.example.com",
        "smtp": {"host": "localhost"},
        "dkim": {"domain": "example.com", "selector": "s1", **dkim},
    }


def _field(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return exc.value.errors[0].field


def _message() -> bytes:
    sender = Sender.build("shop@mail.example.com", "Shop", None)
    return build_email(
        sender,
        "ada@example.org",
        "Your order",
        "Thanks for your order.",
        "<p>Thanks</p>",
        message_id="PK1",
        date=utcnow(),
        extra_headers=(
            ("List-Unsubscribe", "<https://example.com/u/1>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    )


def _records(spec_settings: dict, secrets: dict) -> dict[str, str]:
    dkim = dns_records("shop@mail.example.com", None, spec_settings["dkim"], secrets[SECRET_NAME])
    return {dkim["dkim"]["name"]: dkim["dkim"]["value"]}


@pytest.mark.parametrize("pem", [rsa_pem(), ed25519_pem()], ids=["rsa", "ed25519"])
async def test_signed_messages_verify_and_tampered_ones_fail(pem: str) -> None:
    spec = parse_create(_body(private_key=pem))
    assert spec.settings["dkim"]["algorithm"] in ("rsa-sha256", "ed25519-sha256")
    settings = dkim_settings(spec.settings, spec.secrets)
    assert settings is not None and pem not in repr(settings)
    records = _records(spec.settings, spec.secrets)
    message = _message()
    signed = DkimSigner(settings).signature(message) + message
    assert signed.startswith(b"DKIM-Signature: ")
    assert verify(signed, records)
    covered = signed_headers(signed)
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in covered
    assert "list-unsubscribe" in covered and "list-unsubscribe-post" in covered
    assert not verify(signed.replace(b"Your order", b"Your 0rder"), records)
    assert not verify(signed.replace(b"Thanks for your", b"Thanks for our"), records)
    # Oversigned: a header added above the signed one (which verifiers read first, and mail
    # clients show) breaks the signature, as a changed one does.
    for added in (b"Subject: URGENT pay invoice\r\n", b"List-Unsubscribe: <https://x.test/>\r\n"):
        at = signed.index(b"\r\nFrom: ") + 2
        assert not verify(signed[:at] + added + signed[at:], records), added
    wrong_key = parse_create(_body(private_key=rsa_pem(2048, 1)))
    assert not verify(signed, _records(wrong_key.settings, wrong_key.secrets))


def test_configuration_refuses_weak_keys_misalignment_and_bad_fields() -> None:
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key=rsa_pem(1024)))
    assert _field(exc) == "dkim.private_key" and "2048" in exc.value.detail
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key="-----BEGIN PRIVATE KEY-----\nnope\n"))
    assert _field(exc) == "dkim.private_key"
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key=ed25519_pem(), domain="other.org"))
    assert _field(exc) == "dkim.domain"
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key=ed25519_pem(), domain="ample.com"))  # not a parent
    assert _field(exc) == "dkim.domain"
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key=ed25519_pem(), selector="bad selector"))
    assert _field(exc) == "dkim.selector"
    with pytest.raises(DomainError) as exc:
        parse_create(_body(private_key=ed25519_pem(), extra=1))
    assert _field(exc) == "dkim.extra"
    with pytest.raises(DomainError) as exc:
        parse_create(_body())
    assert _field(exc) == "dkim.private_key"


def test_key_is_write_only_kept_on_update_and_removed_with_null() -> None:
    pem = ed25519_pem()
    spec = parse_create(_body(private_key=pem))
    view = public_view("mail", "email", spec.settings, spec.secrets, False)
    assert view["dkim"] == {
        "domain": "example.com",
        "selector": "s1",
        "algorithm": "ed25519-sha256",
        "private_key_set": True,
    }
    assert pem not in repr(view) and spec.secrets[SECRET_NAME] not in repr(view)
    settings, secrets, _ = parse_update(
        {"dkim": {"selector": "s2"}}, "email", spec.settings, spec.secrets, False
    )
    assert settings["dkim"]["selector"] == "s2" and secrets == spec.secrets
    with pytest.raises(DomainError) as exc:
        parse_update({"from_email": "a@other.org"}, "email", settings, secrets, False)
    assert _field(exc) == "from_email"
    settings, secrets, _ = parse_update({"dkim": None}, "email", settings, secrets, False)
    assert "dkim" not in settings and SECRET_NAME not in secrets
    assert public_view("mail", "email", settings, secrets, False)["dkim"] is None
    assert dkim_settings(settings, secrets) is None
