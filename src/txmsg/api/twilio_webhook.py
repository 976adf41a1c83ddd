"""POST /webhooks/twilio/status: Twilio's message status callbacks, signature checked.

Twilio signs each callback with the account's auth token over the URL it called and the form
parameters (`X-Twilio-Signature`). The URL is rebuilt from the channel configuration's
`status_callback_base_url` (what Twilio was told to call), not from this request's Host, which
a proxy may have changed. Unsigned or wrongly signed callbacks get a 403 and change nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response
from twilio.request_validator import RequestValidator

from txmsg.api.bodies import read_body
from txmsg.api.context import context
from txmsg.api.routing import resource
from txmsg.core.errors import DomainError, not_found
from txmsg.core.timeutil import utcnow
from txmsg.core.twilio_status import STATUS_CALLBACK_PATH, receipt_entry
from txmsg.store.sms_receipts import receipt_facts


def _forbidden(detail: str) -> DomainError:
    return DomainError(detail, 403, "Forbidden")


def _key(value: str | None, limit: int) -> str | None:
    """An id to look up, or None when it cannot name anything (PostgreSQL refuses NUL)."""
    if value is None or len(value) > limit or "\x00" in value:
        return None
    return value


async def twilio_status(request: Request) -> Response:
    ctx = context(request)
    raw = await read_body(request)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise DomainError("the request body is not form-encoded UTF-8", 400) from None
    params = ImmutableMultiDict(pairs)
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise _forbidden("X-Twilio-Signature is missing: only Twilio's signed callbacks count")
    pkey = _key(request.query_params.get("pkey"), 40)
    sid = _key(params.get("MessageSid"), 64)
    # Read together (one round trip); nothing is used before the signature is verified.
    signers, event = await ctx.db.read(receipt_facts, params.get("AccountSid", ""), pkey, sid)
    query = f"?{request.url.query}" if request.url.query else ""
    valid = False
    for signer in signers:
        url = signer.status_callback_base_url + STATUS_CALLBACK_PATH + query
        if RequestValidator(signer.auth_token).validate(url, params, signature):
            valid = True
            break
    if not valid:
        raise _forbidden("X-Twilio-Signature does not match this callback")
    if event is None:
        raise not_found("no event was sent as this message")
    entry = receipt_entry(event.pkey, event.event_id, dict(params), utcnow())
    if entry is not None:
        assert ctx.append_log is not None
        await ctx.append_log(entry)
    return Response(status_code=204)


routes = [resource(STATUS_CALLBACK_PATH, POST=twilio_status)]
