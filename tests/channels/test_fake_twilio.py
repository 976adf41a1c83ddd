"""The fake Twilio behaves as Twilio does for the calls txmsg makes (and test authors assert on)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from helpers import wait_until
from txmsg.testing import FakeTwilio, WaitTimeout
from txmsg.testing.http import LoopServer


async def test_create_message_as_twilio_answers(fake_twilio: FakeTwilio) -> None:
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    form = {"To": "+14155552671", "From": "+14155550100", "Body": "Zoë €5", "StatusCallback": "x"}
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data=form, auth=auth)
        assert r.status_code == 201, r.text
        answer = r.json()
        assert answer["sid"].startswith("SM") and len(answer["sid"]) == 34
        assert answer["status"] == "queued" and answer["error_code"] is None
        assert answer["num_segments"] == "1" and answer["body"] == "Zoë €5"
        [sms] = fake_twilio.messages
        assert (sms.sid, sms.to, sms.body, sms.status_callback) == (
            answer["sid"],
            "+14155552671",
            "Zoë €5",
            "x",
        )
        # Basic auth is checked, and the account of the path too.
        for bad_auth in [(fake_twilio.account_sid, "wrong"), ("ACother", fake_twilio.auth_token)]:
            r = await client.post(url, data=form, auth=bad_auth)
            assert (r.status_code, r.json()["code"]) == (401, 20003)
        assert (await client.post(url, data=form)).status_code == 401
        # Twilio's own checks of the form.
        for change, code in [
            ({"To": ""}, 21604),
            ({"To": "12"}, 21211),
            ({"From": ""}, 21603),
            ({"Body": ""}, 21602),
            ({"Body": "x" * 1601}, 21617),
            ({"Body": "😀" * 801}, 21617),  # 1,602 UTF-16 code units, as Twilio counts
        ]:
            r = await client.post(url, data={**form, **change}, auth=auth)
            assert (r.status_code, r.json()["code"]) == (400, code), change
        fake_twilio.fail_next(429, times=2)
        codes = [(await client.post(url, data=form, auth=auth)).status_code for _ in range(3)]
        assert codes == [429, 429, 201]
    assert fake_twilio.requests == 13 and len(fake_twilio.messages) == 2


@pytest.mark.parametrize(
    ("status", "code"), [(401, 20003), (429, 20429), (500, 20500), (503, 20503), (400, 21211)]
)
async def test_injected_failures_carry_twilios_error_code(
    fake_twilio: FakeTwilio, status: int, code: int
) -> None:
    fake_twilio.fail_next(status)
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}
    async with httpx.AsyncClient() as client:
        r = await client.post(_create_url(fake_twilio), data=form, auth=auth)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert r.json()["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


async def test_status_callbacks_are_signed_as_twilio_signs_them(fake_twilio: FakeTwilio) -> None:
    seen: list[tuple[str, dict[str, str], str]] = []

    async def receiver(scope, receive, send):  # a bare ASGI app recording what it got
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        url = f"http://127.0.0.1:{port}{scope['path']}?{scope['query_string'].decode()}"
        params = dict(httpx.QueryParams(body.decode()))
        seen.append((url, params, headers[b"x-twilio-signature"].decode()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = LoopServer(receiver, name="callback receiver")
    await server.start()
    port = server.port
    try:
        callback = f"http://127.0.0.1:{port}/hook?pkey=P1"
        auth = (fake_twilio.account_sid, fake_twilio.auth_token)
        url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
        async with httpx.AsyncClient() as client:
            form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}
            await client.post(url, data={**form, "StatusCallback": callback}, auth=auth)
        [sms] = fake_twilio.messages
        assert await fake_twilio.send_status(sms, "undelivered", 30003) == 204
        assert sms.status == "undelivered"
    finally:
        await server.stop()
    [(got_url, params, signature)] = seen
    assert got_url == callback
    assert params["MessageSid"] == sms.sid and params["MessageStatus"] == "undelivered"
    assert params["ErrorCode"] == "30003" and params["AccountSid"] == fake_twilio.account_sid
    assert RequestValidator(fake_twilio.auth_token).validate(got_url, params, signature)
    assert not RequestValidator("another").validate(got_url, params, signature)


async def test_a_stop_waits_for_no_stalled_answer() -> None:
    async with FakeTwilio() as twilio:
        url = f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        auth = (twilio.account_sid, twilio.auth_token)
        form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}
        idle = httpx.AsyncClient()  # its kept-alive connection stays open
        stalled = httpx.AsyncClient()
        assert (await idle.post(url, data=form, auth=auth)).status_code == 201
        twilio.fail_next(503, delay=30.0)
        pending = asyncio.create_task(stalled.post(url, data=form, auth=auth))
        await wait_until(lambda: twilio.requests == 2, timeout=5, what="the stalled request")
        began = asyncio.get_running_loop().time()
        await twilio.stop()
        assert asyncio.get_running_loop().time() - began < 2.0
        assert (await pending).status_code == 503  # answered at the stop, not cut off
        await idle.aclose()
        await stalled.aclose()


def _create_url(fake: FakeTwilio) -> str:
    return f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def test_one_fake_serves_one_event_loop_then_another() -> None:
    fake = FakeTwilio()
    form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}

    async def one_test(total: int) -> None:
        async with fake, httpx.AsyncClient() as client:

            async def later() -> None:
                await asyncio.sleep(0.05)  # so that wait_for really waits
                auth = (fake.account_sid, fake.auth_token)
                r = await client.post(_create_url(fake), data=form, auth=auth)
                assert r.status_code == 201, r.text

            sending = asyncio.ensure_future(later())
            await fake.wait_for(total, timeout=5)
            await sending

    asyncio.run(one_test(1))
    asyncio.run(one_test(1))  # each start begins empty
    assert len(fake.messages) == 1


def test_a_fake_reused_by_another_test_starts_empty() -> None:
    """A module's fake, started by one test then by the next: the next test sees none of the
    first one's messages, counters or failure rules."""
    fake = FakeTwilio()
    form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}

    async def post(client: httpx.AsyncClient) -> int:
        auth = (fake.account_sid, fake.auth_token)
        return (await client.post(_create_url(fake), data=form, auth=auth)).status_code

    async def first_test() -> None:
        async with fake, httpx.AsyncClient() as client:
            assert await post(client) == 201
            fake.fail_always(500)  # left set by the test
            assert await post(client) == 500
        assert (len(fake.messages), fake.requests) == (1, 2)  # readable after the stop

    async def next_test() -> None:
        async with fake:
            assert (fake.messages, fake.requests, fake.connections_opened) == ([], 0, 0)
            with pytest.raises(WaitTimeout, match="but 0 arrived"):
                await fake.wait_for(1, timeout=0.1)
            async with httpx.AsyncClient() as client:
                assert await post(client) == 201  # no rule left over
            assert len(await fake.wait_for(1)) == 1 and fake.requests == 1
        fake.fail_next(429)  # set while stopped: for the next run

    async def last_test() -> None:
        async with fake, httpx.AsyncClient() as client:
            assert [await post(client), await post(client)] == [429, 201]

    asyncio.run(first_test())
    asyncio.run(next_test())
    asyncio.run(last_test())


async def test_a_second_start_is_ignored() -> None:
    """As FakeSMTPServer does: no second server on the same port (address in use), none left
    listening after the stop."""
    fake = FakeTwilio()
    await fake.start()
    try:
        port = fake.port
        await fake.start()
        assert fake.port == port
        async with httpx.AsyncClient() as client:
            auth = (fake.account_sid, fake.auth_token)
            form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}
            r = await client.post(_create_url(fake), data=form, auth=auth)
        assert r.status_code == 201
    finally:
        await fake.stop()
    with socket.socket() as sock:  # nothing listens there any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    await fake.start()  # and it starts again after a stop
    await fake.stop()


async def test_misused_helpers_say_so(fake_twilio: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="no message with sid 'SMnope'"):
        await fake_twilio.send_status("SMnope", "delivered")
    with pytest.raises(ValueError, match="400 to 599"):
        fake_twilio.fail_next(200)
    with pytest.raises(ValueError, match="times"):
        fake_twilio.fail_next(429, times=0)
    with pytest.raises(WaitTimeout) as raised:  # a TimeoutError and a failed assertion
        await fake_twilio.wait_for(1, timeout=0.05)
    assert isinstance(raised.value, TimeoutError) and isinstance(raised.value, AssertionError)
    # A Retry-After given in seconds as a number is sent as its text (no 500).
    fake_twilio.fail_next(429, retry_after=2)
    form = {"To": "+14155552671", "From": "+14155550100", "Body": "hi"}
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    async with httpx.AsyncClient() as client:
        r = await client.post(_create_url(fake_twilio), data=form, auth=auth)
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")


async def test_an_mms_a_template_and_a_whatsapp_address_are_taken(
    fake_twilio: FakeTwilio,
) -> None:
    """What Twilio takes without a Body: MediaUrl (repeatable) or a ContentSid; and a To of
    `whatsapp:+E.164`."""
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    base = [("To", "+14155552671"), ("From", "+14155550100")]
    media = [("MediaUrl", "https://example.com/a.png"), ("MediaUrl", "https://example.com/b.png")]
    async with httpx.AsyncClient() as client:
        form = {"content-type": "application/x-www-form-urlencoded"}
        repeated = urlencode(base + media)  # MediaUrl twice, as the twilio client sends it
        r = await client.post(_create_url(fake_twilio), content=repeated, headers=form, auth=auth)
        assert (r.status_code, r.json()["num_media"]) == (201, "2"), r.text
        template = {"To": "whatsapp:+14155552671", "From": "whatsapp:+14155550100"}
        r = await client.post(
            _create_url(fake_twilio), data={**template, "ContentSid": "HX" + "0" * 32}, auth=auth
        )
        assert r.status_code == 201, r.text
        r = await client.post(_create_url(fake_twilio), data=dict(base), auth=auth)
        assert (r.status_code, r.json()["code"]) == (400, 21602)  # none of the three
    mms, whatsapp = fake_twilio.messages
    assert mms.media_urls == ["https://example.com/a.png", "https://example.com/b.png"]
    assert whatsapp.to == "whatsapp:+14155552671" and whatsapp.media_urls == []


@pytest_asyncio.fixture
async def twilio_client(fake_twilio: FakeTwilio) -> AsyncIterator[Client]:
    """The official client pointed at the fake, as the README shows a test author."""
    client = Client(
        fake_twilio.account_sid, fake_twilio.auth_token, http_client=AsyncTwilioHttpClient()
    )
    client.api.base_url = fake_twilio.base_url
    yield client
    await client.http_client.close()  # type: ignore[attr-defined]


async def test_the_twilio_client_fetches_a_message(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    created = await twilio_client.messages.create_async(
        to="+14155552671", from_="+14155550100", body="Your code is 482913"
    )
    [sms] = await fake_twilio.wait_for(1)
    fetched = await twilio_client.messages(created.sid).fetch_async()
    assert (fetched.sid, fetched.to, fetched.body, fetched.status) == (
        sms.sid,
        "+14155552671",
        "Your code is 482913",
        "queued",
    )
    sms.status = "delivered"  # as send_status leaves it once the receiver took the receipt
    assert (await twilio_client.messages(created.sid).fetch_async()).status == "delivered"
    with pytest.raises(TwilioRestException) as raised:
        await twilio_client.messages("SM" + "0" * 32).fetch_async()
    assert (raised.value.status, raised.value.code) == (404, 20404)


async def test_the_twilio_client_fetches_the_account(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    account = await twilio_client.api.v2010.accounts(fake_twilio.account_sid).fetch_async()
    assert (account.sid, account.status, account.type) == (
        fake_twilio.account_sid,
        "active",
        "Full",
    )
    assert account.auth_token is None  # never echoed by the fake
    fake_twilio.account_status = "suspended"
    assert (
        await twilio_client.api.v2010.accounts(fake_twilio.account_sid).fetch_async()
    ).status == ("suspended")
    with pytest.raises(TwilioRestException) as raised:  # another account: its credentials
        await twilio_client.api.v2010.accounts("AC" + "1" * 32).fetch_async()
    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert fake_twilio.requests == 0  # not a create call


async def test_the_twilio_client_lists_messages_page_by_page(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    for n in range(5):
        to = "+14155552671" if n % 2 == 0 else "+14155552672"
        await twilio_client.messages.create_async(to=to, from_="+14155550100", body=f"n{n}")
    listed = await twilio_client.messages.list_async(page_size=2)  # follows next_page_uri
    assert [m.body for m in listed] == ["n4", "n3", "n2", "n1", "n0"]  # newest first
    only = await twilio_client.messages.list_async(to="+14155552672")
    assert [m.body for m in only] == ["n3", "n1"]
    page = await twilio_client.messages.page_async(page_size=2, page_number=2)
    assert [m.body for m in page] == ["n0"] and page.next_page_url is None


async def test_other_paths_and_methods_get_twilios_json_errors(fake_twilio: FakeTwilio) -> None:
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    account = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}"
    async with httpx.AsyncClient(auth=auth) as client:
        r = await client.get(f"{account}/Messages/SMnope.json")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        assert r.json() == {
            "code": 20404,
            "message": f"The requested resource /2010-04-01/Accounts/{fake_twilio.account_sid}"
            "/Messages/SMnope.json was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        }
        r = await client.get(f"{account}/Calls.json")
        assert (r.status_code, r.json()["code"]) == (404, 20404)
        r = await client.delete(f"{account}/Messages.json")
        assert (r.status_code, r.json()["code"]) == (405, 20004)
        r = await client.get(f"{account}/Messages.json", params={"PageSize": "x"})
        assert (r.status_code, r.json()["code"]) == (400, 20001)
        page = (await client.get(f"{account}/Messages.json")).json()
        assert page["messages"] == [] and page["next_page_uri"] is None
        assert (
            page["uri"]
            == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json?PageSize=50&Page=0"
        )
        # Reading needs the account's credentials too, and a 401 asks for them as Twilio does.
        r = await client.get(f"{account}/Messages.json", auth=(fake_twilio.account_sid, "bad"))
        assert (r.status_code, r.json()["code"]) == (401, 20003)
        assert r.headers["www-authenticate"] == 'Basic realm="Twilio API"'


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readmes_twilio_client_example_runs(fake_twilio: FakeTwilio) -> None:
    readme = await asyncio.to_thread(README.read_text)
    [example] = [
        block.split("\n", 1)[1]
        for block in readme.split("```python")[1:]
        if "AsyncTwilioHttpClient" in block
    ]
    namespace: dict[str, Any] = {}
    exec(example.split("```")[0], namespace)
    await namespace["test_code_sms"](fake_twilio)
