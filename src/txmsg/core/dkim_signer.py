"""DKIM signing of outgoing messages (dkimpy): pure computation, run in the render workers.

dkimpy canonicalizes, hashes and builds the DKIM-Signature header. Its RSA operation is pure
Python (about 7 ms a message for a 2048-bit key on this project's machines: 80 messages/s);
here the RSA signature of dkimpy's digest is made by `cryptography` (0.4 ms) instead, through
the same hook dkimpy's Ed25519 signing uses (`pk.sign(digest)`). A signature then costs about
0.5 ms of CPU for either key type, too much for the event loop of a process sending thousands
a second: the render workers (`txmsg.sandbox`) sign, each keeping its signers by `fingerprint`
so that a key crosses the pipe once. `bench/dkim_signing.py` measures signed against unsigned
sends; the tests verify every kind of signature with dkimpy's own verifier.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from txmsg.core.dkim import ED25519, SIGNED_HEADERS, DkimSettings

_HEADERS = [h.encode("ascii") for h in SIGNED_HEADERS]
_SIGNED = frozenset(_HEADERS)
_parse_pem = dkim.parse_pem_private_key


@functools.lru_cache(maxsize=128)
def _parse_pem_once(data: bytes) -> Any:
    """dkimpy parses the PEM key, in pure Python, at every rsa-sha256 signature (0.4 ms, as
    long as the RSA operation), although `_RsaDKIM` signs with its own key object: once per
    key is enough (dkimpy only reads the parsed key)."""
    return _parse_pem(data)


dkim.parse_pem_private_key = _parse_pem_once


@dataclass(frozen=True, slots=True)
class _Signature:
    signature: bytes


@dataclass(frozen=True, slots=True)
class _RsaKey:
    """An RSA key answering `sign(digest)` as PyNaCl's signing keys do (for `_RsaDKIM`)."""

    key: rsa.RSAPrivateKey

    def sign(self, digest: bytes) -> _Signature:
        # RSASSA-PKCS1-v1_5 over the SHA-256 digest dkimpy computed: what rsa-sha256 signs.
        return _Signature(self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())))


class _RsaDKIM(dkim.DKIM):  # type: ignore[misc]  # dkimpy has no type hints: DKIM is Any
    """dkimpy's rsa-sha256 signer with the RSA operation made by `cryptography`.

    `sign()` writes the signature's tags (a=rsa-sha256) and then calls `gen_header`, which
    hashes the headers and signs the digest; there, the key is handed over as an object with
    `sign(digest)`, the call dkimpy makes for Ed25519 keys.
    """

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256")
        self._rsa = _RsaKey(key)

    def gen_header(self, *args: Any, **kwargs: Any) -> bytes:
        fields, include_headers, canon_policy, header_name = args[:4]
        self.signature_algorithm = b"ed25519-sha256"  # the branch that calls pk.sign(digest)
        try:
            header: bytes = super().gen_header(
                fields, include_headers, canon_policy, header_name, self._rsa, **kwargs
            )
        finally:
            self.signature_algorithm = b"rsa-sha256"
        return header


class DkimSigner:
    """Signs messages with one configuration's key, loaded once."""

    def __init__(self, settings: DkimSettings) -> None:
        self._settings = settings
        self._domain = settings.domain.encode("ascii")
        self._selector = settings.selector.encode("ascii")
        self._rsa: rsa.RSAPrivateKey | None = None
        if settings.algorithm != ED25519:
            key = serialization.load_pem_private_key(settings.private_key, password=None)
            assert isinstance(key, rsa.RSAPrivateKey)  # core.dkim admits RSA and Ed25519 only
            self._rsa = key

    def signature(self, message: bytes) -> bytes:
        """The `DKIM-Signature:` header line (CRLF-terminated) for `message`."""
        if self._rsa is None:
            signer = dkim.DKIM(message, signature_algorithm=b"ed25519-sha256")
        else:
            signer = _RsaDKIM(message, self._rsa)
        header = signer.sign(
            self._selector,
            self._domain,
            self._settings.private_key,
            include_headers=_oversigned(signer.headers),
        )
        return bytes(header)


def _oversigned(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Each signed header name once for each time the message has it, and once more (RFC 6376
    8.15): a verifier reads the extra one as "no further such header", so none can be added
    on the way (a second Subject or List-Unsubscribe above the signed one) without breaking
    the signature; one the message lacks is signed as absent."""
    present = [name.lower() for name, _ in headers if name.lower() in _SIGNED]
    return present + _HEADERS


class SigningError(Exception):
    """A key dkimpy cannot sign with: sending again would not help. Its text never holds the
    key."""


def sign(signer: DkimSigner, message: bytes) -> bytes:
    """The signature header line of `message`; raises `SigningError`."""
    try:
        return signer.signature(message)
    except (dkim.DKIMException, ValueError, TypeError) as exc:
        raise SigningError(f"DKIM signing failed ({type(exc).__name__})") from None
