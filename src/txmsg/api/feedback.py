"""POST /api/v1/feedback: bounces and spam complaints that providers report by HTTP (admin).

Recorded like the bounce listener's reports (one write-funnel batch: the delivery-log entries
with the quarantine or denylist of the address, all or none); a report already recorded for
the message (same PKey and kind) is not recorded again.
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
from txmsg.core.feedback import parse_reports
from txmsg.core.timeutil import utcnow
from txmsg.store.feedback import existing


async def report(request: Request) -> Response:
    await authorize(request)
    reports = parse_reports(await read_json(request), utcnow())
    ctx = context(request)
    pkeys = {r.pkey for r in reports}
    missing = sorted(pkeys - await ctx.db.read(existing, pkeys))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise not_found(f"no message with PKey {shown}: nothing was recorded")
    await ctx.record_feedback(reports)
    return JSONResponse({"accepted": len(reports)}, status_code=202)


routes = [resource("/api/v1/feedback", POST=report)]
