"""DKIM settings of an email channel configuration: `dkim: {domain, selector, private_key}`.

The private key is a write-only secret, kept with the configuration's other secrets (the SMTP
password) and never shown. Keys are RSA of 2048 bits or more (`rsa-sha256`) or Ed25519
(`ed25519-sha256`, RFC 8463), given as PEM. The From address must align with the signing
domain (the same domain or a subdomain of it), as DMARC requires of a DKIM pass.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from txmsg.core.errors import DomainError, as_refused, invalid, refused
from txmsg.core.validation import get_str, reject_unknown, require_object
from txmsg.core.verp import is_hostname

_SELECTOR = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)
DKIM_FIELDS = {"domain", "selector", "private_key"}
SECRET_NAME = "dkim_private_key"  # its key in the channel configuration's secrets
MIN_RSA_BITS = 2048
MAX_KEY_CHARS = 16_384  # an RSA 8192 key in PEM is about 6,400 characters
RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
# The headers every signature covers; one absent from a message is signed as absent, so that it
# cannot be added on the way (List-Unsubscribe and List-Unsubscribe-Post included: RFC 8058).
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


@dataclass(frozen=True, slots=True)
class DkimSettings:
    """What a signer needs: `private_key` in the form dkimpy takes for `algorithm` (PEM for
    RSA, the base64 seed for Ed25519)."""

    domain: str
    selector: str
    algorithm: str
    private_key: bytes = field(repr=False)


def fingerprint(settings: DkimSettings) -> str:
    """Names a signing setup without revealing its key: what the render workers cache by
    (here, not beside the signer: the process handing renders to the workers signs nothing
    and does not import dkimpy)."""
    digest = hashlib.sha256()
    for part in (settings.algorithm, settings.domain, settings.selector):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(settings.private_key)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedKey:
    algorithm: str
    signing_key: bytes = field(repr=False)  # what is stored, in the form dkimpy signs with
    public_key: str  # the base64 `p=` value of the DNS record


def load_key(pem: str, name: str = "dkim.private_key") -> LoadedKey:
    """The key's algorithm, signing form and public half; a 400 naming `name` otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise invalid(name, "must be an unencrypted PEM private key (RSA or Ed25519)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise invalid(name, f"RSA keys must have at least {MIN_RSA_BITS} bits")
        signing = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return LoadedKey(RSA, signing, base64.b64encode(public).decode("ascii"))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw_public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return LoadedKey(
            ED25519, base64.b64encode(seed), base64.b64encode(raw_public).decode("ascii")
        )
    raise invalid(name, "must be an RSA (2048 bits or more) or Ed25519 key")


def public_key(algorithm: str, signing_key: str) -> str:
    """The base64 `p=` value for a stored signing key."""
    if algorithm == ED25519:
        seed = base64.b64decode(signing_key)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")
    return load_key(signing_key).public_key


def aligned(from_email: str, domain: str) -> bool:
    """Relaxed DMARC alignment: the From domain is `domain` or a subdomain of it."""
    from_domain = from_email.rpartition("@")[2].lower().rstrip(".")
    return from_domain == domain or from_domain.endswith("." + domain)


def parse_dkim(
    raw: object, current: dict[str, Any] | None, current_key: str | None, from_email: str
) -> tuple[dict[str, Any] | None, str | None]:
    """The stored `dkim` settings and signing key of a body's `dkim` (null: none).

    On update the given keys replace the stored ones; the stored key is kept when not given.
    """
    if raw is None:
        return None, None
    body = require_object(raw, "dkim")
    reject_unknown(body, DKIM_FIELDS, "dkim.")
    merged = {**(current or {}), **{k: v for k, v in body.items() if k != "private_key"}}
    for part in ("domain", "selector"):  # left out of an update, with none stored: a 422
        if part not in body and merged.get(part) is None:
            raise refused("dkim." + part, "is required (no DKIM settings are stored)")
    domain = get_str(merged, "domain", prefix="dkim.", required=True, max_length=253)
    assert domain is not None
    domain = domain.strip().lower().rstrip(".")
    if not is_hostname(domain):
        raise invalid("dkim.domain", "must be a domain name such as example.com")
    selector = get_str(merged, "selector", prefix="dkim.", required=True, max_length=63)
    assert selector is not None
    selector = selector.strip().lower()
    if not _SELECTOR.match(selector):
        raise invalid("dkim.selector", "must be DNS labels such as s2026 or mail.s1")
    key = body.get("private_key")
    if key is None and "private_key" not in body and current is not None and current_key:
        algorithm, signing_key = current["algorithm"], current_key
    else:
        if key is None:  # left out, with none stored
            raise refused("dkim.private_key", "is required (no DKIM key is stored)")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
            raise invalid(
                "dkim.private_key",
                f"is required: a PEM private key of at most {MAX_KEY_CHARS} characters",
            )
        try:  # which text is a usable key, a schema cannot say
            loaded = load_key(key)
        except DomainError as exc:
            raise as_refused(exc) from None
        algorithm, signing_key = loaded.algorithm, loaded.signing_key.decode("ascii")
    if not aligned(from_email, domain):  # two fields (one maybe stored): a 422
        raise refused(
            "dkim.domain",
            f"must be the domain of from_email or a parent of it (from_email is {from_email})",
        )
    return {"domain": domain, "selector": selector, "algorithm": algorithm}, signing_key


def dkim_settings(settings: dict[str, Any], secrets: dict[str, Any]) -> DkimSettings | None:
    """The signer's settings of a stored configuration; None when it does not sign."""
    dkim = settings.get("dkim")
    key = secrets.get(SECRET_NAME)
    if not dkim or not key:
        return None
    return DkimSettings(dkim["domain"], dkim["selector"], dkim["algorithm"], key.encode("ascii"))


def dkim_view(settings: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any] | None:
    """What the API shows of `dkim`: never the key, only whether it is set."""
    dkim = settings.get("dkim")
    if not dkim:
        return None
    return {**dkim, "private_key_set": SECRET_NAME in secrets}


def dns_records(
    from_email: str, bounce_domain: str | None, dkim: dict[str, Any] | None, key: str | None
) -> dict[str, Any]:
    """The DNS records to publish for a configuration: its DKIM key, SPF and DMARC advice."""
    from_domain = from_email.rpartition("@")[2].lower()
    envelope_domain = bounce_domain or from_domain
    out: dict[str, Any] = {"dkim": None}
    if dkim and key:
        k = "rsa" if dkim["algorithm"] == RSA else "ed25519"
        out["dkim"] = {
            "type": "TXT",
            "name": f"{dkim['selector']}._domainkey.{dkim['domain']}",
            "value": f"v=DKIM1; k={k}; p={public_key(dkim['algorithm'], key)}",
        }
    out["spf"] = {
        "type": "TXT",
        "name": envelope_domain,
        "value": "v=spf1 a mx ~all",
        "advice": (
            f"SPF checks the envelope sender's domain ({envelope_domain}). List the addresses "
            "of the relays that send for it (ip4:, ip6:, include: of your provider) in place "
            "of 'a mx', and end with ~all while testing, -all once every sender is listed."
        ),
    }
    dmarc_domain = dkim["domain"] if dkim else from_domain
    out["dmarc"] = {
        "type": "TXT",
        "name": f"_dmarc.{dmarc_domain}",
        "value": f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{dmarc_domain}",
        "advice": (
            "Start with p=none and read the aggregate reports sent to rua; move to "
            "p=quarantine, then p=reject, once all your mail passes DKIM or SPF aligned."
        ),
    }
    return out
