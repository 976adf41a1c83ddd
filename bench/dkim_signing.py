"""DKIM signing and relay failover cost: messages/s through the engine's SMTP pool, same run.

The engine's own send path below the dispatcher: messages built by core/mime.py, sent by 256
concurrent tasks through `SMTPPool` (8 pooled connections) into Postfix's smtp-sink, on uvloop;
then the same through `SigningSender` with an RSA 2048 key (dkimpy signs in a worker thread)
and with an Ed25519 key (signed inline). Every message gets its own Message-ID, so every
signature is computed. A last figure sends unsigned through `FailoverSender` with a fallback
relay (the primary up): what the breaker bookkeeping costs on every send.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import LINE, free_port, smtp_sink
from txmsg.channels.dkim import DkimSigner, SigningSender
from txmsg.channels.smtp import SMTPPool
from txmsg.core.breaker import BreakerSettings
from txmsg.core.delivery import EmailProvider
from txmsg.core.dkim import DkimSettings, load_key
from txmsg.core.email_config import SMTPSettings
from txmsg.core.mime import Sender, build_email
from txmsg.engine.failover import FailoverSender, Relay

CONCURRENCY = 256


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _signer(pem: str) -> DkimSigner:
    loaded = load_key(pem)
    return DkimSigner(DkimSettings("example.com", "s1", loaded.algorithm, loaded.signing_key))


async def _run(port: int, count: int, signer: DkimSigner | None, failover: bool = False) -> float:
    smtp = SMTPSettings(host="127.0.0.1", port=port, pool_size=8)
    pool = SMTPPool(smtp)
    provider: EmailProvider = pool if signer is None else SigningSender(pool, signer)
    if failover:
        relays = [Relay("primary", provider), Relay("fallback", SMTPPool(smtp))]
        provider = FailoverSender(relays, BreakerSettings())
    sender = Sender.build("shop@example.com", "Example Shop", None)
    date = datetime.now(UTC)
    text, html = (LINE + "\n") * 10, ("<p>" + LINE + "</p>\n") * 10
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            data = build_email(
                sender, "ada@example.org", "Hello Ada", text, html, message_id=f"m{n}", date=date
            )
            await provider.send("shop@example.com", ["ada@example.org"], data)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    await provider.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5_000, help="messages per figure")
    args = parser.parse_args()
    rsa_signer = _signer(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    ed_signer = _signer(_pem(ed25519.Ed25519PrivateKey.generate()))
    port = free_port()
    with smtp_sink(port):
        unsigned = uvloop.run(_run(port, args.count, None))
        signed_ed = uvloop.run(_run(port, args.count, ed_signer))
        signed_rsa = uvloop.run(_run(port, args.count, rsa_signer))
        failover = uvloop.run(_run(port, args.count, None, failover=True))
    print(f"unsigned                 {unsigned:9,.0f} msg/s")
    print(f"DKIM ed25519-sha256      {signed_ed:9,.0f} msg/s  ratio {signed_ed / unsigned:.2f}")
    print(f"DKIM rsa-sha256 (2048)   {signed_rsa:9,.0f} msg/s  ratio {signed_rsa / unsigned:.2f}")
    print(f"failover, 2 relays       {failover:9,.0f} msg/s  ratio {failover / unsigned:.2f}")


if __name__ == "__main__":
    main()
