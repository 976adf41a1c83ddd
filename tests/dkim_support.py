"""Keys and signature checks for the DKIM tests: dkimpy verifies, the DNS is a dict."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_NONE = serialization.NoEncryption()


@cache
def rsa_pem(bits: int = 2048, n: int = 0) -> str:
    """An RSA key of `bits`; the `n`th of its size (made once per test process)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(_PEM, _PKCS8, _NONE).decode("ascii")


def ed25519_pem() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(_PEM, _PKCS8, _NONE).decode("ascii")


def verify(message: bytes, records: Mapping[str, str]) -> bool:
    """Whether dkimpy finds the message's first signature valid, looking its key up in
    `records` (TXT values by name) rather than in the DNS."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(name.decode("ascii").rstrip("."))
        return value.encode("ascii") if value is not None else None

    return bool(dkim.verify(message, dnsfunc=lookup))


def signed_headers(message: bytes) -> list[str]:
    """The `h=` list of the message's DKIM-Signature, lower-case."""
    d = dkim.DKIM(message)
    sig = dict(
        (k.strip(), v.strip())
        for k, _, v in (
            part.partition(b"=")
            for part in next(v for n, v in d.headers if n.lower() == b"dkim-signature").split(b";")
        )
    )
    return [h.strip().decode("ascii").lower() for h in sig[b"h"].split(b":")]
