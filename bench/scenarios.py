"""The benchmark table's scenarios, each on a fresh store; `run.py` puts them side by side.

- `acceptance`: durable 201s per second of `serve --role api` under wrk (32 or 128 connections);
- `end_to_end`: trigger -> SMTP accepted, events sent per second from the first trigger to
  the last send, for a deployment of N API and M worker processes (0 workers: `serve`);
- `latency`: transactional trigger -> SMTP accepted, one trigger at a time, with and without
  a backlog of bulk events draining in the same engine, and while bulk batches load;
- the claim latency as the queue grows is `claims.py` (in process, no HTTP).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _common import TRIGGER_BODY, setup_event, wrk_many
from _deploy import Reader, Store, deployment, reader


def acceptance(
    store: Store, smtp_port: int, seconds: int, warmup: int, *, connections: int = 32
) -> float:
    """Triggers accepted (201, committed) per second by one API-only process."""
    with deployment(store, api_only=True) as [base]:
        key = setup_event(base, smtp_port)
        url = f"{base}/rest/mc/EVTbench"
        wrk_many([url], TRIGGER_BODY, key, warmup, connections)
        result = wrk_many([url], TRIGGER_BODY, key, seconds, connections)
    if result["non2xx"] or result["socket_errors"]:
        raise RuntimeError(f"trigger acceptance had errors: {result}")
    return result["rps"]


@dataclass(frozen=True)
class Delivery:
    rate: float  # events sent per second, first trigger to last send
    trigger_rps: float  # while wrk ran
    sent: int


def end_to_end(
    store: Store, smtp_port: int, seconds: int, *, apis: int = 1, workers: int = 0
) -> Delivery:
    """wrk triggers events on every API at once while the workers send them."""
    with deployment(store, apis, workers) as bases, reader(store) as db:
        key = setup_event(bases[0], smtp_port)
        start = datetime.now(UTC)
        load = wrk_many([f"{b}/rest/mc/EVTbench" for b in bases], TRIGGER_BODY, key, seconds)
        counts = db.wait_sent()
        last = db.last_sent()
    sent = counts.get("processed", 0)
    if sent != sum(counts.values()) or last is None:
        raise RuntimeError(f"not every accepted event was sent: {counts}")
    return Delivery(sent / (last - start).total_seconds(), load["rps"], sent)


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    probes: int
    backlog_left: int  # bulk events still queued when the last probe was sent


PROBE = {"email": "probe@example.org", "ctx": {"firstName": "Ada"}}
BATCH = 1000


def latency(store: Store, smtp_port: int, backlog: int, probes: int) -> Latency:
    """Transactional triggers one at a time (20 ms apart), each measured from just before its
    request to its SMTP acceptance (`events.sent_at`); after loading `backlog` bulk events
    through the batch trigger, which the same engine starts draining at once."""
    with deployment(store) as [base], reader(store) as db:
        key = setup_event(base, smtp_port, bulk=True)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        _probe(client, 10)  # warm-up: templates compiled, SMTP sessions open
        db.wait_sent()
        for _ in range(backlog // BATCH):
            client.post("/rest/mc/EVTbulk/batch", json={"events": _bulk()}).raise_for_status()
        sent_from = _probe(client, probes)
        left = db.counts().get("pending", 0) if backlog else 0
        return _measured(db, sent_from, left)


def latency_while_loading(store: Store, smtp_port: int, batches: int) -> Latency:
    """As `latency`, the probes sent while another client loads `batches` batch triggers of
    1,000 bulk events, one after the other, as fast as they are answered (and the engine
    drains them meanwhile)."""
    with deployment(store) as [base], reader(store) as db:
        key = setup_event(base, smtp_port, bulk=True)
        headers = {"Authorization": f"Bearer {key}"}
        client = httpx.Client(base_url=base, headers=headers)
        _probe(client, 10)
        db.wait_sent()
        loaded = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as loader:
                for _ in range(batches):
                    r = loader.post("/rest/mc/EVTbulk/batch", json={"events": _bulk()})
                    r.raise_for_status()
            loaded.set()

        loading = threading.Thread(target=load)
        loading.start()
        sent_from = _probe(client, 0, until=loaded)
        loading.join()
        return _measured(db, sent_from, db.counts().get("pending", 0))


def _bulk() -> list[dict[str, object]]:
    return [{"email": f"bulk{i}@example.org", "ctx": {"firstName": "Bo"}} for i in range(BATCH)]


def _measured(db: Reader, sent_from: dict[str, datetime], left: int) -> Latency:
    """The probes' latencies once all were sent (within 120 s)."""
    deadline = time.monotonic() + 120
    while True:
        sent = db.sent_at("EVTbench")
        if all(p in sent for p in sent_from) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    missing = [p for p in sent_from if p not in sent]
    if missing:
        raise RuntimeError(f"{len(missing)} transactional probes not sent within 120 s")
    ms = sorted((sent[p] - t).total_seconds() * 1000 for p, t in sent_from.items())
    return Latency(statistics.median(ms), _percentile(ms, 0.99), len(ms), left)


def _probe(
    client: httpx.Client, count: int, until: threading.Event | None = None
) -> dict[str, datetime]:
    """`count` transactional triggers 20 ms apart, or as many as are sent until `until` is
    set; when each was sent, by PKey."""
    sent_from: dict[str, datetime] = {}
    while len(sent_from) < count or (until is not None and not until.is_set()):
        t = datetime.now(UTC)
        r = client.post("/rest/mc/EVTbench", json=PROBE)
        r.raise_for_status()
        sent_from[r.json()["PKey"]] = t
        time.sleep(0.02)
    return sent_from


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
