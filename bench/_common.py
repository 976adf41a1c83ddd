"""Shared plumbing of the benchmarks: processes on loopback, wrk runs, engine set-up."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bench-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def need(tool: str) -> str:
    path = shutil.which(tool) or (
        f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None
    )
    if path is None:
        sys.exit(f"{tool} is needed: apt-get install postfix wrk")
    return path


@contextlib.contextmanager
def process(
    args: list[str],
    env: dict[str, str] | None = None,
    port: int | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
    )
    try:
        if port is not None:
            wait_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def smtp_sink(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Postfix's smtp-sink: a C SMTP server that accepts and discards; -c counts messages.

    Its counter output is drained here: on a full pipe it stops answering (after about 2,700
    messages), and every send after that waits out its timeout.
    """
    with process(
        [need("smtp-sink"), "-c", "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        port=port,
        stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield proc


def _wrk_script(body: str, key: str | None) -> str:
    # `body` may hold one %d: each request then carries its own number (distinct recipients).
    script = "\n".join(
        [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            *([f'wrk.headers["Authorization"] = "Bearer {key}"'] if key else []),
            "counter = 0",
            "request = function()",
            "  counter = counter + 1",
            f"  return wrk.format(nil, nil, nil, string.format([[{body}]], counter))",
            "end",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    return f.name


def _wrk_result(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",  # type: ignore[dict-item]
    }


def wrk_many(
    urls: list[str], body: str, key: str | None, seconds: int, connections: int = 32
) -> dict[str, float]:
    """One wrk per URL at once, `connections` shared among them; their summed rates.

    Each wrk numbers its own requests: recipients repeat across URLs (`body`'s %d), which
    changes nothing for the engine (no uniqueness on recipients).
    """
    script = _wrk_script(body, key)
    per = max(1, connections // len(urls))
    try:
        procs = [
            subprocess.Popen(
                [need("wrk"), "-t1", f"-c{per}", f"-d{seconds}s", "-s", script, url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for url in urls
        ]
        outs = [p.communicate()[0] for p in procs]
    finally:
        os.unlink(script)
    if any(p.returncode for p in procs):
        raise RuntimeError(f"wrk failed: {outs}")
    results = [_wrk_result(out) for out in outs]
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "non2xx": sum(r["non2xx"] for r in results),
        "socket_errors": " ".join(str(r["socket_errors"]) for r in results).strip(),  # type: ignore[dict-item]
    }


def wrk(
    url: str, body: str, key: str | None, seconds: int, connections: int = 32
) -> dict[str, float]:
    return wrk_many([url], body, key, seconds, connections)


def engine_env(data_dir: Path) -> dict[str, str]:
    extra = {k: v for k, v in os.environ.items() if k.startswith("TXMSG_")}
    return {
        "TXMSG_DATA_DIR": str(data_dir),
        "TXMSG_ADMIN_KEY": ADMIN_KEY,
        # Far above any rate measured: every trigger goes through its key's limiter, none is
        # refused (the default, 1000/s, would answer most of wrk's requests with 429).
        "TXMSG_TRIGGER_RATE_LIMIT": "1000000/s",
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **extra,
    }


def serve_args(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "txmsg.cli",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def setup_event(
    base: str, smtp_port: int, *, publish_message: bool = True, bulk: bool = False
) -> str:
    """Channel config, event config `EVTbench` (and, with `bulk`, `EVTbulk` in the bulk
    lane), published messages; returns a trigger key."""
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    r = admin.post(
        "/api/v1/channel-configs",
        json={
            "name": "sink",
            "channel": "email",
            "from_email": "shop@example.com",
            "from_name": "Example Shop",
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "tls": "none",
                "pool_size": int(os.environ.get("BENCH_POOL", "8")),
            },
        },
    )
    r.raise_for_status()
    _event(admin, "bench", "transactional", publish_message)
    if bulk:
        _event(admin, "bulk", "bulk", True)
    r = admin.post("/api/v1/keys", json={"role": "trigger", "label": "bench"})
    r.raise_for_status()
    return str(r.json()["key"])


def _event(admin: httpx.Client, name: str, priority: str, publish_message: bool) -> None:
    admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": name,
            "label": name.title(),
            "channel": "email",
            "channel_config": "sink",
            "priority": priority,
            "fields": [{"name": "firstName", "type": "string", "required": True}],
        },
    ).raise_for_status()
    admin.post(f"/api/v1/event-configs/EVT{name}/publish").raise_for_status()
    if publish_message:
        admin.put(
            f"/api/v1/messages/EVT{name}/draft",
            json={
                "subject": "Hello {{ ctx.firstName }}",
                "html": ("<p>" + LINE + "</p>\n") * 10,
                "text": (LINE + "\n") * 10,
            },
        ).raise_for_status()
        admin.post(f"/api/v1/messages/EVT{name}/publish").raise_for_status()


LINE = "Hello {{ ctx.firstName }}, your order {{ event.PKey }} is on its way."
TRIGGER_BODY = '{"email": "user%d@example.org", "ctx": {"firstName": "Ada"}}'


def _count(db: Path, status: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE status = ?", (status,)).fetchone()[0]
        )


def _total(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def drain(db: Path, start: float) -> dict[str, float]:
    """Wait until every accepted event is sent; the rate from `start` to the last send."""
    deadline = time.monotonic() + 300
    processed = accepted = 0
    while time.monotonic() < deadline:
        # Requests wrk had in flight when it stopped are still accepted: count them too.
        accepted = _total(db)
        processed = _count(db, "processed")
        if processed >= accepted:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    others = {s: _count(db, s) for s in ("pending", "paused", "deliveryFailed", "tooOld")}
    return {"rate": processed / elapsed, "accepted": accepted, "processed": processed, **others}


def engine_rates(
    setup: Callable[[str], str], seconds: int, *, backlog: bool, body: str = TRIGGER_BODY
) -> dict[str, float]:
    """`txmsg serve` on SQLite; `setup(base_url)` makes the EVTbench event, returns a trigger key.

    backlog: events triggered while paused, then resumed (the delivery rate); else triggered
    while sending (trigger -> sent).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(serve_args(port), env=engine_env(Path(tmp)), port=port),
    ):
        db = Path(tmp) / "txmsg.db"
        key = setup(base)
        url = f"{base}/rest/mc/EVTbench"
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        if backlog:
            admin.post("/api/v1/event-configs/EVTbench/pause").raise_for_status()
            load = wrk(url, body, key, seconds)
            start = time.perf_counter()
            admin.post("/api/v1/event-configs/EVTbench/resume").raise_for_status()
        else:
            start = time.perf_counter()
            load = wrk(url, body, key, seconds)
        return {**drain(db, start), "trigger_rps": load["rps"]}


def print_rates(
    baseline_name: str, base: float, unit: str, delivery: dict[str, float], live: dict[str, float]
) -> None:
    """The baseline, then the engine's delivery and trigger -> sent rates with their ratios."""
    print(f"{baseline_name:40} {base:8.0f} {unit}/s  (baseline)")
    for name, result in (
        ("txmsg delivery (queued -> sent)", delivery),
        ("txmsg trigger -> sent, concurrent", live),
    ):
        print(f"{name:40} {result['rate']:8.0f} {unit}/s  ratio {result['rate'] / base:.2f}")
        print(
            f"  accepted {result['accepted']:.0f} (triggers at {result['trigger_rps']:.0f}/s), "
            f"processed {result['processed']:.0f}, left pending {result['pending']:.0f}, "
            f"paused {result['paused']:.0f}, failed {result['deliveryFailed']:.0f}, "
            f"tooOld {result['tooOld']:.0f}"
        )
