"""A fake Twilio: the Messages API on a real loopback HTTP server, in the test's event loop.

    async with FakeTwilio() as twilio:
        ...  # point an SMS channel configuration at twilio.base_url with twilio.account_sid
        [sms] = await twilio.wait_for(1)
        assert sms.to == "+14155552671" and sms.body == "Your code is 123456"
        await twilio.send_status(sms, "delivered")   # a signed status callback to the engine

It answers `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio does: a
form-encoded body, HTTP Basic auth with the account SID and auth token, and a JSON message
resource (`sid`, `status`, `error_code`, ...) or a JSON error (`code`, `message`, `status`).
`GET .../Messages/{Sid}.json` fetches a message, `GET .../Messages.json` lists them (newest
first, in Twilio's paging envelope); any other path is Twilio's JSON 404 (code 20404).
Failures can be injected (`fail_next`, `fail_always`): 429, 5xx, or 4xx with a Twilio error code.
Status callbacks are signed with the auth token the way Twilio signs them (X-Twilio-Signature).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from txmsg.core.sms import TWILIO_MAX_CHARACTERS, analyse, characters
from txmsg.testing.http import LoopServer
from txmsg.testing.running import Recorder

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
_DEFAULT_MESSAGES = {
    401: (20003, "Authenticate"),  # what Twilio answers a wrong SID or token
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
    400: (21211, "The 'To' number is not a valid phone number."),
}


@dataclass
class FakeSms:
    """One message Twilio accepted."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    form: dict[str, str]  # every form parameter as received (a repeated one: its last value)
    status: str = "queued"
    media_urls: list[str] = field(default_factory=list)  # MediaUrl, in order (an MMS)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str
    remaining: int | None  # None: every request
    retry_after: str | None = None  # the answer's Retry-After header
    echo_credentials: bool = False  # the message ends with the request's Authorization
    delay: float = 0.0  # seconds before answering (a stalled provider)


def _error_status(status: int) -> int:
    if not 400 <= status <= 599:
        raise ValueError(f"an injected failure's status is an error: 400 to 599, not {status}")
    return status


def _how(how: dict[str, Any]) -> dict[str, Any]:
    """fail_next's options, a Retry-After of seconds given as a number taken as its text."""
    if isinstance(how.get("retry_after"), int | float):
        how = {**how, "retry_after": str(how["retry_after"])}
    return how


class FakeTwilio(Recorder[FakeSms]):
    """Twilio's Messages API for one account, on `127.0.0.1` and a free port."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.host = host
        self.port = port
        self.requests = 0  # create calls received, failed ones included
        # The Account resource's status (GET /2010-04-01/Accounts/{Sid}.json): "active",
        # "suspended" or "closed", as Twilio says it.
        self.account_status = "active"
        self.clients: set[tuple[str, int]] = set()  # client addresses: one per TCP connection
        self._failures: list[_Failure] = []
        self._stopping = asyncio.Event()  # ends stalled answers: a stop waits for no stall
        self._server: LoopServer | None = None
        self._started = ""  # when this run began: the account's dates
        self._http: aiohttp.ClientSession | None = None
        messages = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        self._app = Starlette(
            routes=[
                Route(f"/{API_VERSION}/Accounts/{{account}}.json", self._account, methods=["GET"]),
                Route(f"{messages}.json", self._create, methods=["POST"]),
                Route(f"{messages}.json", self._list, methods=["GET"]),
                Route(f"{messages}/{{sid}}.json", self._fetch, methods=["GET"]),
            ],
            # Any other path or method: Twilio's JSON error, not Starlette's plain text.
            exception_handlers={HTTPException: self._http_error},
        )

    @property
    def base_url(self) -> str:
        """What to configure as the channel configuration's `api_base_url`."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_opened(self) -> int:
        """TCP connections the clients opened so far (reuse keeps this low)."""
        return len(self.clients)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; a started fake ignores a second start. Each run begins empty: no messages,
        counters at zero (failure rules end with the run that set them: see `stop()`)."""
        if self._server is not None:
            return
        self._begin_run()
        self._started = format_datetime(datetime.now(UTC), usegmt=True)
        self.requests = 0
        self.clients = set()
        self._stopping = asyncio.Event()
        server = LoopServer(self._app, self.host, self.port, "fake Twilio server")
        await server.start()  # raises if it cannot listen: nothing is left half-started
        self._server = server
        self.port = server.port
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop listening; what was recorded stays readable until the next start. The failure
        rules end here: a rule a test set and did not use up does not reach the next run
        (rules set while stopped apply to the next run)."""
        self._stopping.set()
        self.reset_failures()
        if self._http is not None:
            await self._http.close()
        if self._server is not None:
            await self._server.stop()
        self._server = self._http = None

    # -- what tests use --------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
        **how: Any,
    ) -> None:
        """The next `times` create calls get this error (e.g. 429, 500, 400 with 21211).

        `retry_after="2"` adds that Retry-After header; `echo_credentials=True` appends the
        request's Authorization header to the message (a careless provider or proxy);
        `delay=5.0` answers only after that many seconds (a stalled provider).
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        text = self._error_text(status, code, message)
        self._failures.append(_Failure(_error_status(status), *text, times, **_how(how)))

    def fail_always(
        self, status: int, code: int | None = None, message: str | None = None, **how: Any
    ) -> None:
        """Every create call gets this error until `reset_failures()` (`how`: see fail_next)."""
        text = self._error_text(status, code, message)
        self._failures.append(_Failure(_error_status(status), *text, None, **_how(how)))

    def reset_failures(self) -> None:
        self._failures.clear()

    def _summary(self) -> str:
        return f" ({self.requests} create call(s) received)"

    def callback_params(
        self, sms: FakeSms, status: str, error_code: int | str | None = None
    ) -> dict[str, str]:
        """The form parameters of a status callback, as Twilio sends them."""
        params = {
            "AccountSid": sms.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sms.sid,
            "SmsSid": sms.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": sms.to,
        }
        if sms.from_:
            params["From"] = sms.from_
        if sms.messaging_service_sid:
            params["MessagingServiceSid"] = sms.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    def sign(self, url: str, params: dict[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for this URL and form."""
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    async def send_status(
        self,
        sms: FakeSms | str,
        status: str,
        error_code: int | str | None = None,
        *,
        url: str | None = None,
        signature: str | None = None,
    ) -> int:
        """POST a signed status callback to the message's StatusCallback (or `url`).

        `signature` replaces the computed one (a forged callback). Returns the HTTP status
        the receiver answered.
        """
        if isinstance(sms, str):
            found = [m for m in self.messages if m.sid == sms]
            if not found:
                raise ValueError(f"no message with sid {sms!r} was accepted")
            sms = found[0]
        target = url or sms.status_callback
        if not target:
            raise ValueError(f"message {sms.sid} has no StatusCallback and no url was given")
        params = self.callback_params(sms, status, error_code)
        headers = {"X-Twilio-Signature": signature or self.sign(target, params)}
        assert self._http is not None, "the fake Twilio is not started"
        async with self._http.post(target, data=params, headers=headers) as response:
            await response.read()
            if response.status < 300:
                sms.status = status
            return response.status

    # -- the API ---------------------------------------------------------------------------

    @staticmethod
    def _error_text(status: int, code: int | None, message: str | None) -> tuple[int | None, str]:
        default_code, default_message = _DEFAULT_MESSAGES.get(status, (None, "Error"))
        return (code if code is not None else default_code), (message or default_message)

    def _take_failure(self) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining is None:
                return failure
            if failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return failure
        return None

    @staticmethod
    def _error(
        status: int, code: int | None, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        more = f"https://www.twilio.com/docs/errors/{code}" if code else None
        body = {"code": code, "message": message, "more_info": more, "status": status}
        if status == 401:  # as Twilio asks for credentials
            headers = {**(headers or {}), "WWW-Authenticate": 'Basic realm="Twilio API"'}
        return JSONResponse(body, status_code=status, headers=headers)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return self._error(405, 20004, "Method not allowed", exc.headers)
        return self._not_found(request)

    def _not_found(self, request: Request) -> Response:
        return self._error(404, 20404, f"The requested resource {request.url.path} was not found")

    async def _failed(self, failure: _Failure, request: Request) -> Response:
        if failure.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), failure.delay)
        message = failure.message
        if failure.echo_credentials:
            message += f" (request: Authorization: {request.headers.get('authorization')})"
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        return self._error(failure.status, failure.code, message, headers)

    def _authorized(self, request: Request, account: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and account == self.account_sid
        )

    async def _create(self, request: Request) -> Response:
        self.requests += 1
        if request.client is not None:
            self.clients.add((request.client.host, request.client.port))
        account = request.path_params["account"]
        if not self._authorized(request, account):
            return self._error(401, 20003, "Authenticate")
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        form = dict(pairs)
        media = [value for name, value in pairs if name == "MediaUrl" and value]
        failure = self._take_failure()
        if failure is not None:
            return await self._failed(failure, request)
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to.removeprefix("whatsapp:")):  # a WhatsApp address names one too
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return self._error(400, 21603, "A 'From' or 'MessagingServiceSid' is required.")
        if not body and not media and not form.get("ContentSid"):  # an MMS, or a template
            return self._error(400, 21602, "Message body is required.")
        if characters(body) > TWILIO_MAX_CHARACTERS:  # UTF-16 code units, as Twilio counts
            return self._error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        sms = FakeSms(
            sid="SM" + secrets.token_hex(16),
            account_sid=account,
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            status_callback=form.get("StatusCallback"),
            form=form,
            status="queued" if sender else "accepted",
            media_urls=media,
        )
        self._record(sms)
        return JSONResponse(self._resource(sms), status_code=201)

    async def _account(self, request: Request) -> Response:
        """GET /2010-04-01/Accounts/{Sid}.json: the account's resource (what a credentials
        check reads), without its auth_token, which Twilio includes."""
        account = request.path_params["account"]
        if not self._authorized(request, account):
            return self._error(401, 20003, "Authenticate")
        uri = f"/{API_VERSION}/Accounts/{account}"
        return JSONResponse(
            {
                "sid": account,
                "owner_account_sid": account,
                "friendly_name": "txmsg fake Twilio account",
                "status": self.account_status,
                "type": "Full",
                "date_created": self._started,
                "date_updated": self._started,
                "uri": f"{uri}.json",
                "subresource_uris": {"messages": f"{uri}/Messages.json"},
            }
        )

    async def _fetch(self, request: Request) -> Response:
        """GET .../Messages/{Sid}.json: the message's resource as it is now."""
        account, sid = request.path_params["account"], request.path_params["sid"]
        if not self._authorized(request, account):
            return self._error(401, 20003, "Authenticate")
        for sms in self.messages:
            if sms.sid == sid:
                return JSONResponse(self._resource(sms))
        return self._not_found(request)

    async def _list(self, request: Request) -> Response:
        """GET .../Messages.json: the messages, newest first, a page at a time (`PageSize`,
        `Page`), filtered by `To` and `From` if given, in Twilio's paging envelope."""
        account = request.path_params["account"]
        if not self._authorized(request, account):
            return self._error(401, 20003, "Authenticate")
        query = request.query_params
        try:
            size, page = int(query.get("PageSize", 50)), int(query.get("Page", 0))
        except ValueError:
            return self._error(400, 20001, "Invalid paging parameter")
        if not 1 <= size <= 1000 or page < 0:
            return self._error(400, 20001, "PageSize must be 1 to 1000 and Page at least 0")
        filters = {name: query[name] for name in ("To", "From") if name in query}
        found = [
            sms
            for sms in reversed(self.messages)
            if filters.get("To", sms.to) == sms.to and filters.get("From", sms.from_) == sms.from_
        ]
        start = page * size
        items = found[start : start + size]
        path = request.url.path

        def uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': size, 'Page': number})}"

        return JSONResponse(
            {
                "messages": [self._resource(sms) for sms in items],
                "page": page,
                "page_size": size,
                "start": start,
                "end": start + max(len(items) - 1, 0),
                "uri": uri(page),
                "first_page_uri": uri(0),
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "next_page_uri": uri(page + 1) if start + size < len(found) else None,
            }
        )

    @staticmethod
    def _resource(sms: FakeSms) -> dict[str, Any]:
        date = format_datetime(sms.received_at, usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{sms.account_sid}/Messages/{sms.sid}"
        return {
            "account_sid": sms.account_sid,
            "api_version": API_VERSION,
            "body": sms.body,
            "date_created": date,
            "date_sent": None,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sms.from_,
            "messaging_service_sid": sms.messaging_service_sid,
            "num_media": str(len(sms.media_urls)),
            "num_segments": str(analyse(sms.body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": sms.sid,
            "status": sms.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": sms.to,
            "uri": f"{uri}.json",
        }


if __name__ == "__main__":  # a module, not a program: say which command runs it
    raise SystemExit("run the fake Twilio with: txmsg fake twilio --help")
