"""/health, /ready and /metrics: a process's liveness, readiness and Prometheus metrics.

`/health` says the process answers. `/ready` says it can do its work: the database is
reachable, its schema is the code's, the dispatcher runs where the process's role has
one, and (once a stored secret failed to open) the process's secret key opens the database's
sealed values (503 otherwise, with the failing checks). `/metrics` (admin key) is the process's own
figures in Prometheus's text format; the ops port (`ops_port.py`) serves the same three
without a key, on an address of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from txmsg.api.auth import authorize
from txmsg.api.responses import JSONResponse
from txmsg.metrics import CONTENT_TYPE, Metrics
from txmsg.store.db import Database
from txmsg.store.outage import OutageLog
from txmsg.store.queue.depth import queue_figures
from txmsg.store.readiness import schema_state
from txmsg.store.sealing import stored_tokens
from txmsg.store.tables import metadata

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Probe:
    """What the probes read of one process."""

    db: Database
    metrics: Metrics
    dispatching: Callable[[], bool | None]  # None: the role has no dispatcher
    ready_outage: OutageLog = field(default_factory=lambda: OutageLog(log, "readiness"))
    metrics_outage: OutageLog = field(default_factory=lambda: OutageLog(log, "metrics"))


async def _database_checks(db: Database, outage: OutageLog) -> dict[str, str]:
    try:
        state = await asyncio.wait_for(schema_state(db), READY_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - the answer says the database is not reachable
        if not outage.failed(exc):
            log.warning("readiness: the database is not reachable (%s)", type(exc).__name__)
        return {"database": f"unreachable ({type(exc).__name__})", "schema": "unknown"}
    outage.ok()
    if state.is_current:
        return {"database": "ok", "schema": "ok"}
    found = state.current or "none"
    return {"database": "ok", "schema": f"at revision {found}, expected {state.head}"}


async def _secrets_check(db: Database) -> str | None:
    """None while no stored secret failed to open in this process (started, it opened them
    all); after one did, whether the keyring opens every sealed value the database holds now
    (another process may have resealed them with a key this one lacks)."""
    keyring = db.keyring
    if keyring is None or not keyring.failed:
        return None
    tokens = await asyncio.wait_for(db.read(stored_tokens, metadata), READY_TIMEOUT_SECONDS)
    unopened = sum(not keyring.opens(token) for token in tokens)
    if not unopened:
        keyring.failed = False
        return None
    return (
        f"{unopened} of {len(tokens)} stored secrets cannot be opened with this process's "
        "TXMSG_SECRET_KEY (or secret.key): restart it with the key they were sealed with"
    )


async def readiness(probe: Probe) -> tuple[bool, dict[str, Any]]:
    """Whether the process is ready, and the answer's body (each check: `ok` or why not)."""
    checks = await _database_checks(probe.db, probe.ready_outage)
    if checks["database"] == "ok":
        secrets = await _secrets_check(probe.db)
        if secrets is not None:
            checks["secrets"] = secrets
    dispatching = probe.dispatching()
    if dispatching is not None:
        checks["dispatcher"] = "ok" if dispatching else "not running"
    ok = all(value == "ok" for value in checks.values())
    return ok, {"status": "ready" if ok else "not ready", "checks": checks}


async def metrics_text(probe: Probe) -> bytes:
    """The Prometheus exposition, with the queue depth read now. The database unavailable (or
    its read failing), the process's own figures are still answered: the depth is left out and
    `txmsg_database_up` is 0."""
    try:
        read = probe.db.read(queue_figures, probe.db.clock.now())
        figures = await asyncio.wait_for(read, READY_TIMEOUT_SECONDS)
    except Exception as exc:
        if not probe.metrics_outage.failed(exc):
            log.warning("metrics: reading the queue depth failed", exc_info=True)
        probe.metrics.set_queue_depth(None)
        probe.metrics.set_channel_caps({}, ())  # left out, as the depth, rather than stale
    else:
        probe.metrics_outage.ok()
        probe.metrics.set_queue_depth(figures.depth)
        probe.metrics.set_channel_caps(figures.caps, figures.held)
    return probe.metrics.exposition()


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def routes(probe: Probe) -> list[Route]:
    async def ready(_request: Request) -> Response:
        ok, body = await readiness(probe)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        await authorize(request)
        return Response(await metrics_text(probe), media_type=CONTENT_TYPE)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
