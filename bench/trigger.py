"""Trigger acceptance rate against a bare Starlette JSON endpoint, measured in the same run.

Both run as one uvicorn process (uvloop + httptools) loaded by wrk with 32 connections. The
engine commits every accepted trigger (group commit, SQLite, synchronous=FULL) before its 201.
Two engine figures:
- queue only: the event's message is unpublished, so accepted events queue. This is the
  trigger acceptance rate, the figure the issue's target (0.4x the bare endpoint) is about.
- while sending: the message is published and the same process renders and sends every
  accepted event to Postfix's smtp-sink as it accepts more. Acceptance then shares the one
  core with delivery, and the rate is the end-to-end rate of `e2e_email.py` (trigger -> sent),
  whose baseline is raw aiosmtplib; beside a bare endpoint it reads low by construction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    TRIGGER_BODY,
    engine_env,
    free_port,
    process,
    serve_args,
    setup_event,
    smtp_sink,
    wrk,
)


def bare(seconds: int, connections: int = 32) -> dict[str, float]:
    port = free_port()
    with process(
        [sys.executable, str(Path(__file__).parent / "bare_endpoint.py"), str(port)], port=port
    ):
        url = f"http://127.0.0.1:{port}/rest/mc/EVTbench"
        wrk(url, TRIGGER_BODY, None, 2, connections)  # warm-up
        return wrk(url, TRIGGER_BODY, None, seconds, connections)


def engine(seconds: int, sending: bool) -> dict[str, float]:
    port, smtp_port = free_port(), free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        smtp_sink(smtp_port),
        process(serve_args(port), env=engine_env(Path(tmp)), port=port),
    ):
        key = setup_event(f"http://127.0.0.1:{port}", smtp_port, publish_message=sending)
        url = f"http://127.0.0.1:{port}/rest/mc/EVTbench"
        wrk(url, TRIGGER_BODY, key, 2)
        return wrk(url, TRIGGER_BODY, key, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    base = bare(args.seconds)
    queued = engine(args.seconds, sending=False)
    sending = engine(args.seconds, sending=True)
    print(f"bare Starlette endpoint         {base['rps']:9.0f} req/s  (baseline)")
    for name, result in (
        ("txmsg trigger (queue only)", queued),
        ("txmsg trigger (while sending)", sending),
    ):
        print(
            f"{name:31} {result['rps']:9.0f} req/s  ratio {result['rps'] / base['rps']:.2f}"
            f"  non-2xx {result['non2xx']:.0f} {result['socket_errors']}"
        )


if __name__ == "__main__":
    main()
