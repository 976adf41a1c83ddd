"""POST /api/v1/feedback: bounces and spam complaints that providers report by HTTP (admin).

Recorded like the bounce listener's reports (one write-funnel batch: the delivery-log entries
with the quarantine or denylist of the address, all or none); a report already recorded for
the message (same PKey and kind) is not recorded again. A report about a message no provider
saw (never sent, nor attempted at one) is refused with a 422 naming its PKey, and nothing of
the batch is recorded.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import not_found
from txmsg.core.feedback import never_sent, parse_reports
from txmsg.store.feedback import states


async def report(request: Request) -> Response:
    await authorize(request)
    body = await read_json(request)
    ctx = context(request)
    reports = parse_reports(body, ctx.db.clock.now())  # the database's time, as the sends'

    pkeys = {r.pkey for r in reports}
    found = await ctx.db.read(states, pkeys)
    missing = sorted(pkeys - found.keys())
    if missing:
        raise not_found(f"no message with PKey {_some(missing)}: nothing was recorded")
    # Only a message a provider saw (sent, or an attempt that reached one) can bounce or be
    # complained about; the write funnel drops the others too (store/feedback.py).
    unsent = [
        (i, r.pkey, found[r.pkey].status) for i, r in enumerate(reports) if not found[r.pkey].seen
    ]
    if unsent:
        raise never_sent(isinstance(body, dict) and "items" in body, unsent)
    await ctx.record_feedback(reports)
    return JSONResponse({"accepted": len(reports)}, status_code=202)


def _some(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


routes = [resource("/api/v1/feedback", POST=report)]
