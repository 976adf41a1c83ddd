"""Steps shared by the end-to-end tests, each through the public HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from txmsg.core.queue import PRIORITY_BULK, ClaimedEvent, NewEvent, new_pkey
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.testing import FakeSMTPServer

FINAL = {"processed", "ignored", "deliveryFailed", "routingFailed", "tooOld", "targetingFailed"}


async def create_channel(
    admin: httpx.AsyncClient, smtp: FakeSMTPServer, name: str = "mail", **extra: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "channel": "email",
        "from_email": "shop@example.com",
        "from_name": "Example Shop",
        "reply_to": "help@example.com",
        "smtp": {"host": smtp.host, "port": smtp.port, "tls": "none", "timeout": 5},
        **extra,
    }
    r = await admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_event(
    admin: httpx.AsyncClient,
    event_id: str = "cartAbandonment",
    fields: list[dict[str, Any]] | None = None,
    channel_config: str = "mail",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "eventId": event_id,
        "label": "Cart abandonment",
        "channel": "email",
        "channel_config": channel_config,
        "target": "event",
        "fields": fields
        if fields is not None
        else [
            {"name": "firstName", "type": "string", "required": True},
            {"name": "amount", "type": "number", "required": False},
        ],
        **extra,
    }
    r = await admin.post("/api/v1/event-configs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def publish_message(
    client: httpx.AsyncClient,
    event_id: str,
    subject: str = "Hello {{ ctx.firstName }}",
    html: str = "<p>Hi {{ ctx.firstName }}, ref {{ event.PKey }}</p>",
    text: str = "Hi {{ ctx.firstName }}, ref {{ event.PKey }}",
) -> dict[str, Any]:
    r = await client.put(
        f"/api/v1/messages/{event_id}/draft", json={"subject": subject, "html": html, "text": text}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/messages/{event_id}/publish")
    assert r.status_code == 201, r.text
    return r.json()


async def live_event(
    admin: httpx.AsyncClient, smtp: FakeSMTPServer, event_id: str = "cartAbandonment", **kw: Any
) -> str:
    """A channel, a published event and a published message; returns the stored eventId."""
    await create_channel(admin, smtp)
    created = await create_event(admin, event_id, **kw)
    r = await admin.post(f"/api/v1/event-configs/{created['eventId']}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, created["eventId"])
    return created["eventId"]


async def trigger(
    client: httpx.AsyncClient, event_id: str, body: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    payload = (
        body if body is not None else {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
    )
    r = await client.post(f"/rest/mc/{event_id}", json=payload, **kw)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_status(
    client: httpx.AsyncClient, href: str, wanted: str | set[str], timeout: float = 10.0
) -> dict[str, Any]:
    wanted_set = {wanted} if isinstance(wanted, str) else wanted
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(href)
        assert r.status_code == 200, r.text
        last = r.json()
        if last["status"] in wanted_set:
            return last
        await asyncio.sleep(0.03)
    raise AssertionError(f"status never became {wanted_set}; last seen: {last}")


# --- added for the end-to-end status, validation, auth and restart tests ---------------------


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """`r` is an RFC 9457 problem with `status`; when `field` is given, one error names it."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status, body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert body.get("title"), body
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, f"expected an error on {field!r}, got {fields}: {body}"
    return body


def forbid_server_errors(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Make every 5xx answer received by `client` fail the test at once."""

    async def check(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            raise AssertionError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text}"
            )

    hooks = client.event_hooks
    hooks["response"] = [*hooks.get("response", []), check]
    client.event_hooks = hooks
    return client


async def create_key(admin: httpx.AsyncClient, role: str, label: str | None = None) -> str:
    """A new API key of `role`; returns its secret."""
    r = await admin.post("/api/v1/keys", json={"role": role, "label": label or f"{role} key"})
    assert r.status_code == 201, r.text
    secret: str = r.json()["key"]
    return secret


# Ports handed to the servers a test starts: each xdist worker its own range, below the
# kernel's ephemeral ports (32768 and up on Linux). A port the kernel gave for port 0 could be
# given again to the other worker's test (or taken by an outgoing connection) before the server
# meant to listen on it does: its client would then talk to another test's server.
PORTS_PER_WORKER = 2000
FIRST_PORT = 20000
_next_port = [0]


def _worker_ports() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0) % 6
    # TXMSG_TEST_PORTS=54000-54999: the ports this machine lets the tests use, a sixth each.
    chosen = os.environ.get("TXMSG_TEST_PORTS")
    if chosen:
        low, high = (int(end) for end in chosen.split("-"))
        size = (high - low + 1) // 6
        return range(low + index * size, low + (index + 1) * size)
    first = FIRST_PORT + index * PORTS_PER_WORKER
    return range(first, first + PORTS_PER_WORKER)


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port free now, never handed out before in this test run by this worker."""
    return free_ports(1)


@contextlib.contextmanager
def held_port(port: int) -> Iterator[int]:
    """`port` of 127.0.0.1 listened on by this process meanwhile, as another program would."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (see `free_port`)."""
    ports = _worker_ports()
    for _ in range(len(ports)):
        first = ports[_next_port[0] % (len(ports) - count)]
        _next_port[0] += count
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports")


class SilentSMTPServer:
    """Accepts TCP connections and never answers: an SMTP client waits for the greeting.

    Sends to it stay in flight (the event is `processing`) until the client's timeout.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read()  # until the client hangs up

    async def __aenter__(self) -> SilentSMTPServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hang_up(self) -> None:
        """Close the connections accepted so far: their sends fail (a transient error)."""
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.hang_up()
        await self._server.wait_closed()


async def set_smtp(
    admin: httpx.AsyncClient, host: str, port: int, name: str = "mail", **smtp: Any
) -> dict[str, Any]:
    """PATCH the channel configuration `name` to send through `host:port`."""
    r = await admin.patch(
        f"/api/v1/channel-configs/{name}",
        json={"smtp": {"host": host, "port": port, "tls": "none", **smtp}},
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate()` (a plain callable) until it is true; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


async def metrics_showing(client: httpx.AsyncClient, sample: str, timeout: float = 10.0) -> str:
    """The `/metrics` text once it shows `sample` (a line's start). A send is counted after its
    outcome is recorded, so a status already final may be scraped a moment before its count."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = (await client.get("/metrics")).text
        if sample in text or asyncio.get_running_loop().time() > deadline:
            assert sample in text, f"{sample!r} not in the metrics within {timeout}s:\n{text}"
            return text
        await asyncio.sleep(0.05)


# --- SMS through the fake Twilio ----------------------------------------------------------------


async def create_sms_channel(
    admin: httpx.AsyncClient,
    twilio: Any,
    callback_base_url: str,
    name: str = "sms",
    **extra: Any,
) -> dict[str, Any]:
    """An SMS channel configuration sending into `twilio` (a FakeTwilio)."""
    body = {
        "name": name,
        "channel": "sms",
        "twilio": {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_number": "+14155550100",
            "status_callback_base_url": callback_base_url,
            "api_base_url": twilio.base_url,
            "timeout": 5,
        },
        **extra,
    }
    r = await admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def live_sms_event(
    admin: httpx.AsyncClient,
    twilio: Any,
    callback_base_url: str,
    event_id: str = "orderShipped",
    body: str = "Hi {{ ctx.firstName }}, order {{ ctx.orderId }} shipped. Ref {{ event.PKey }}",
) -> str:
    """An SMS channel, a published SMS event and its published message; returns the eventId."""
    await create_sms_channel(admin, twilio, callback_base_url)
    created = await create_event(
        admin,
        event_id,
        fields=[
            {"name": "firstName", "type": "string", "required": True},
            {"name": "orderId", "type": "string", "required": False},
        ],
        channel="sms",
        channel_config="sms",
    )
    stored = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{stored}/publish")
    assert r.status_code == 200, r.text
    r = await admin.put(f"/api/v1/messages/{stored}/draft", json={"body": body})
    assert r.status_code == 200, r.text
    r = await admin.post(f"/api/v1/messages/{stored}/publish")
    assert r.status_code == 201, r.text
    return stored


async def delivery_log_answer(admin: httpx.AsyncClient, event_id: str, pkey: str) -> Any:
    """The delivery-log answer of one event (its status, entries, interactions_expired)."""
    r = await admin.get(f"/api/v1/events/{event_id}/{pkey}/delivery-log")
    assert r.status_code == 200, r.text
    return r.json()


async def delivery_log(admin: httpx.AsyncClient, href: str) -> list[dict[str, Any]]:
    """The delivery-log entries of the event at `href` (/rest/mc/{eventId}/{PKey})."""
    _, _, event_id, pkey = href.split("/")[1:]
    items: list[dict[str, Any]] = (await delivery_log_answer(admin, event_id, pkey))["items"]
    return items


def queued_event(
    event_id: str,
    email: str = "a@example.org",
    *,
    pkey: str | None = None,
    status: EventStatus = EventStatus.PENDING,
    priority: int = 0,
    ctx: dict[str, Any] | None = None,
    now: datetime | None = None,
    expires_in: timedelta = timedelta(hours=1),
    **extra: Any,
) -> NewEvent:
    """An event as the trigger API hands it to the write funnel, for store-level tests."""
    now = now or utcnow()
    pkey = pkey or new_pkey()
    return NewEvent(
        pkey=pkey,
        event_id=event_id,
        priority=priority,
        status=status,
        email=email,
        ctx=ctx if ctx is not None else {},
        event_date=now,
        scheduled_at=None,
        expires_at=now + expires_in,
        due_at=now,
        response={"PKey": pkey},
        **extra,
    )


def leased_event(
    event_id: int, *, until: datetime | None = None, bulk: bool = False
) -> ClaimedEvent:
    """An event as a claim hands it to the lease book, for engine-level tests."""
    now = utcnow()
    event = ClaimedEvent(
        id=event_id,
        pkey=f"pkey-{event_id}",
        event_id="EVT",
        email="a@example.org",
        ctx={},
        event_date=now,
        scheduled_at=None,
        expires_at=now + timedelta(hours=1),
        attempts=0,
        lease_token=f"token-{event_id}",
        lease_until=until if until is not None else now + timedelta(seconds=60),
    )
    return replace(event, priority=PRIORITY_BULK) if bulk else event


def nested_lists(levels: int) -> list[Any]:
    """`[[[...]]]`, `levels` deep: past what the engine stores (a body or ctx refused)."""
    root: list[Any] = []
    node = root
    for _ in range(levels):
        child: list[Any] = []
        node.append(child)
        node = child
    return root
