"""POST /webhooks/twilio/status: Twilio's message status callbacks, signature checked.

Twilio signs each callback with the account's auth token over the URL it called and the form
parameters (`X-Twilio-Signature`). The URL is rebuilt from the channel configuration's
`status_callback_base_url` (what Twilio was told to call), not from this request's Host, which
a proxy may have changed. A callback counts only when the event its `pkey` names is an SMS
event whose own channel configuration (same account) signed it; unsigned or wrongly signed
callbacks get a 403 and change nothing. A configuration with fallbacks has several accounts:
a callback's AccountSid picks the signers, so each account's receipts verify with its own
token, over its own `status_callback_base_url`.
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
from txmsg.core.twilio_status import STATUS_CALLBACK_PATH, check_callback, receipt_entry
from txmsg.store.sms_receipts import receipt_target


def _forbidden(detail: str) -> DomainError:
    return DomainError(detail, 403, "Forbidden")


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
    ids = check_callback(request.query_params.get("pkey"), dict(params))
    # Configurations of this account whose token signed this very URL and form (cached:
    # a callback reads no secret from the database, and nothing else before this check).
    query = f"?{request.url.query}" if request.url.query else ""
    signed_by = {
        signer.channel_config
        for signer in await ctx.signers.for_account(ids.account_sid)
        if RequestValidator(signer.auth_token).validate(
            signer.status_callback_base_url + STATUS_CALLBACK_PATH + query, params, signature
        )
    }
    if not signed_by:
        raise _forbidden("X-Twilio-Signature does not match this callback")
    target = await ctx.db.read(receipt_target, ids.pkey)
    if target is None or not target.is_sms:
        raise not_found(f"no SMS event '{ids.pkey}'")
    if target.channel_config not in signed_by or ids.account_sid not in target.account_sids:
        raise _forbidden("this callback is not signed by the event's channel configuration")
    if not target.sent_as(ids.message_sid):
        # Signed, but about another message than the one sent for this event (or about one
        # that never was): acknowledged (Twilio need not retry it) and not recorded.
        return Response(status_code=204)
    # The database's time: the receipt is compared with its send (reports, the lifecycle).
    entry = receipt_entry(target.pkey, target.event_id, dict(params), ctx.db.clock.now())
    if entry is not None:
        await ctx.append_log(entry)
    return Response(status_code=204)


routes = [resource(STATUS_CALLBACK_PATH, POST=twilio_status)]
