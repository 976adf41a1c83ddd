"""SMS through Twilio's official library, on its asynchronous HTTP client (aiohttp).

One `TwilioSender` per channel configuration revision holds one `Client` and one pooled HTTP
session: connections to Twilio are kept alive and reused across sends, nothing blocks the event
loop. Every outcome is turned into the engine's `TransientSendError` (5xx, 408/409/425/429,
authentication failures, 4xx without a Twilio error code, connection errors, timeouts: retry
later) or `PermanentSendError` (other 4xx, with Twilio's error code).
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from txmsg.core.delivery import (
    FAULT_4XX,
    FAULT_5XX,
    FAULT_AUTH,
    FAULT_CONNECT,
    FAULT_PROTOCOL,
    FAULT_SENDER,
    FAULT_TIMEOUT,
    FAULT_TLS,
    PermanentSendError,
    RecipientOptedOut,
    SendError,
    TransientSendError,
    credential_forms,
)
from txmsg.core.retry import retry_after_seconds
from txmsg.core.twilio_config import DEFAULT_API_BASE_URL, TwilioSettings
from txmsg.core.twilio_status import status_callback_url

# The library logs every request at INFO (URL and headers, never the body): keep it quiet.
_quiet = logging.getLogger("txmsg.channels.twilio.http")
_quiet.setLevel(logging.WARNING)


# The Retry-After of the last answer in this task (the library drops an error's headers).
_retry_after: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)


class _HttpClient(AsyncTwilioHttpClient):
    """The library's pooled client, keeping a 429's or 503's Retry-After for `send`."""

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        response = await super().request(*args, **kwargs)
        if response.status_code in (429, 503):
            header = (response.headers or {}).get("Retry-After")
            _retry_after.set(retry_after_seconds(header, datetime.now(UTC)))
        return response


class TwilioSender:
    """Sends SMS for one channel configuration; `close()` ends its HTTP session."""

    def __init__(self, settings: TwilioSettings) -> None:
        self._settings = settings
        self._http = _HttpClient(pool_connections=True, logger=_quiet)
        self._client = Client(settings.account_sid, settings.auth_token, http_client=self._http)
        if settings.api_base_url.rstrip("/") != DEFAULT_API_BASE_URL:
            # Another API host (a proxy, or a fake in tests): send there as given. TWILIO_EDGE /
            # TWILIO_REGION rewrite twilio.com host names only, so they are left out here and
            # keep working, read by the library, when the default host is used.
            self._client.api.base_url = settings.api_base_url.rstrip("/")
            self._client.edge = None
            self._client.region = None

    async def send(self, to: str, body: str, callback_pkey: str | None = None) -> str:
        """Create the message; returns its SID (SM...)."""
        s = self._settings
        kwargs: dict[str, str] = {"to": to, "body": body}
        if s.messaging_service_sid:
            kwargs["messaging_service_sid"] = s.messaging_service_sid
        if s.from_number:
            kwargs["from_"] = s.from_number
        if s.status_callback_base_url and callback_pkey:
            base = s.status_callback_base_url
            kwargs["status_callback"] = status_callback_url(base, callback_pkey)
        try:
            message = await self._create(kwargs)
        except SendError as exc:
            # A provider (or a proxy) may echo the request's Basic credentials: a reason is
            # shown to API users and stored with the event, so it never carries them.
            forms = credential_forms(s.account_sid, s.auth_token)
            raise exc.masking(forms, _MAX_REASON) from None
        if not message.sid:
            raise TransientSendError("Twilio accepted the message without a SID")
        return message.sid

    async def _create(self, kwargs: dict[str, str]) -> Any:
        """The library's call, its failures as the engine's send errors."""
        return await self._call(self._client.messages.create_async(**kwargs))

    async def probe(self, timeout: float) -> str:
        """Fetch the account's resource (`GET /2010-04-01/Accounts/{Sid}.json`) with the
        configured credentials, as a send would reach Twilio: what it says, e.g. "account
        active"; else a `SendError` (its fault says why, its reason has no credential)."""
        s = self._settings
        bounded = min(s.timeout, timeout)
        try:
            account = await self._call(
                self._client.api.v2010.accounts(s.account_sid).fetch_async(), bounded
            )
        except SendError as exc:
            raise exc.masking(credential_forms(s.account_sid, s.auth_token), _MAX_REASON) from None
        if account.status not in (None, "active"):  # suspended or closed: it sends nothing
            raise PermanentSendError(f"the Twilio account is {account.status}", fault=FAULT_AUTH)
        return "account active"

    async def _call(self, request: Any, timeout: float | None = None) -> Any:
        """Await one of the library's requests, its failures as the engine's send errors."""
        limit = self._settings.timeout if timeout is None else timeout
        _retry_after.set(None)
        try:
            async with asyncio.timeout(limit):
                return await request
        except TwilioRestException as exc:
            message = _LIBRARY_PREFIX.sub("", str(exc.msg or ""))
            raise _classify(exc.status, exc.code, message, _retry_after.get()) from None
        except TwilioServiceException as exc:  # Twilio's newer RFC 9457 error answers
            detail = exc.detail or exc.title
            raise _classify(exc.status, exc.code, detail, _retry_after.get()) from None
        except TimeoutError:
            raise TransientSendError(
                f"Twilio did not answer within {limit:g} s", fault=FAULT_TIMEOUT
            ) from None
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            raise TransientSendError(
                f"Twilio TLS failed: {type(exc).__name__}", fault=FAULT_TLS
            ) from None
        except aiohttp.ClientError as exc:
            raise TransientSendError(
                f"Twilio connection failed: {type(exc).__name__}", fault=FAULT_CONNECT
            ) from None
        except (TwilioException, ValueError) as exc:  # an answer that is not Twilio's JSON
            raise TransientSendError(
                f"Twilio answer not understood: {exc}", fault=FAULT_PROTOCOL
            ) from None

    async def close(self) -> None:
        await self._http.close()


_MAX_REASON = 560  # Twilio's message, 500 characters, after its code and status

# The library puts "Unable to create record: " before Twilio's own message.
_LIBRARY_PREFIX = re.compile(r"^Unable to \w+ record:? ?")


# Answers that say nothing about the recipient: a timeout, a conflict, too early, too many.
_TRANSIENT_4XX = {408, 409, 425, 429}
# Authentication failed: the channel configuration's token is wrong (rotated, revoked). A fault
# of the configuration, not of the message: retried until the event expires, so that fixing
# the token sends what waits instead of failing it.
_AUTH_CODE = 20003
# The sender is not the account's: a From number it does not own or that cannot send SMS, a
# messaging service without numbers. Every message would get it: the configuration's fault
# (the message still ends deliveryFailed, as Twilio answered it for good).
_SENDER_CODES = {21212, 21606, 21659, 21660, 21704}
# "Attempt to send to unsubscribed recipient": the number texted STOP to this sender. Every
# later message to it would be refused the same way, until it texts START.
_UNSUBSCRIBED_CODE = 21610


def _classify(
    status: int, code: int | None, message: str, retry_after: float | None = None
) -> SendError:
    """Transient: 5xx, 408/409/425/429, 401, 4xx without a Twilio error code; else permanent."""
    # The library uses the HTTP status as code when the answer held none (a proxy's error).
    twilio_code = code if code and code != status else None
    label = f"Twilio error {twilio_code}" if twilio_code else "Twilio error"
    text = " ".join(message.split())  # cut to length once credentials are masked (send)
    reason = f"{label} (HTTP {status}): {text}" if text else f"{label} (HTTP {status})"
    fault = _fault(status, twilio_code)
    if (
        status >= 500
        or status in _TRANSIENT_4XX
        or status == 401
        or twilio_code == _AUTH_CODE
        or twilio_code is None  # not Twilio's answer: a proxy or gateway in between
    ):
        return TransientSendError(reason, retry_after, fault=fault)
    if twilio_code == _UNSUBSCRIBED_CODE:
        return RecipientOptedOut(reason, fault=fault)
    return PermanentSendError(reason, fault=fault)


def _fault(status: int, twilio_code: int | None) -> str | None:
    """The account's or Twilio's fault in an answer, if it is one; None: the message's (an
    invalid To, 21211; a body too long, 21617), whose text may name the recipient."""
    if status in (401, 403) or twilio_code == _AUTH_CODE:
        return FAULT_AUTH
    if twilio_code in _SENDER_CODES:
        return FAULT_SENDER
    if status >= 500:
        return FAULT_5XX
    if status == 408:
        return FAULT_TIMEOUT
    if status in _TRANSIENT_4XX or twilio_code is None:
        return FAULT_4XX
    return None
