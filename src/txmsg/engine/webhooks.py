"""Delivers the status-webhook outbox: signed POSTs, retried with backoff.

Runs beside the dispatcher and shares nothing with it but the database: a slow or failing
receiver delays only its own calls, never a send, and never another event configuration's
calls. Calls flow through a pipeline rather than in lock-step batches: up to `IN_FLIGHT` at
once, at most `PER_CONFIG` of one event configuration (the claim skips a configuration at its
cap); as calls end, their results are settled and the freed slots claimed in one transaction,
so results are committed together rather than one by one. The cap is per configuration, not
per URL: the outbox row names its configuration (the claim filters on it without a join), a
webhook belongs to one, and a URL may change while calls of it are queued.

Delivery is at-least-once (a call whose answer was lost is made again); the payload's `id`
lets receivers drop duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import httpx

from txmsg.core.retry import RetryPolicy
from txmsg.core.webhooks import SIGNATURE_HEADER, encode, payload, signature
from txmsg.store import webhook_outbox as outbox
from txmsg.store.db import Database
from txmsg.store.outage import OutageLog
from txmsg.store.webhook_outbox import Ask, Delivery, Settlement

log = logging.getLogger(__name__)

# Calls in flight in one process, overall and of one event configuration: the others find a
# slot so long as fewer than ten configurations are at their cap at once.
IN_FLIGHT = 200
PER_CONFIG = 20
# A call ending waits this long for others ending about then, to be settled with them.
SETTLE_LINGER = 0.01
SETTLE_BATCH = 32
# A call not delivered within this time is given up (and logged).
MAX_AGE = timedelta(hours=24)
# A stop waits this long for the loop's turn under way (a write) before cancelling it.
STOP_WAIT = 15.0


class WebhookSender:
    def __init__(
        self,
        db: Database,
        retry: RetryPolicy,
        *,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
        in_flight: int = IN_FLIGHT,
        per_config: int = PER_CONFIG,
    ) -> None:
        self._db = db
        self._retry = retry
        self._poll = poll_interval
        self._timeout = timeout
        self._in_flight = in_flight
        self._per_config = per_config
        # A claimed call not settled within this time (a crash) is due again.
        self._lease = timedelta(seconds=timeout * 2 + 30)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._flying: dict[asyncio.Task[str | None], Delivery] = {}
        self._busy: Counter[str] = Counter()  # calls in flight by event configuration
        self._ended: list[tuple[Delivery, str | None]] = []  # results still to settle
        self._wake = asyncio.Event()  # a call ended
        self._stopping = False

    def start(self) -> None:
        # As many connections as calls in flight: a slow receiver's calls must not wait for
        # the pool's connections on top of their own.
        limits = httpx.Limits(max_connections=self._in_flight)
        self._client = httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, limits=limits
        )
        self._task = asyncio.create_task(self._run(), name="txmsg-webhooks")

    async def stop(self) -> None:
        """No more claims; calls under way are cut short and released (due at once, for the
        next process to take), those that ended are settled.

        The loop is told to end, not cancelled: cut short in its write, a claim committed
        (SQLite's write runs on in its thread) would leave its calls leased, due again only
        after their lease. Its turn under way ends (its claims launched, released below),
        within a write's time; cancelled only if it has not ended after `STOP_WAIT`."""
        self._stopping = True
        self._wake.set()  # the loop's wait ends at once
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=STOP_WAIT)
            if not done:
                log.warning(
                    "the webhook sender's loop did not end within %s s; cancelled", STOP_WAIT
                )
                self._task.cancel()
                await asyncio.wait([self._task])
        flying = list(self._flying.items())
        for task, _ in flying:
            task.cancel()
        await asyncio.gather(*(task for task, _ in flying), return_exceptions=True)
        settlement = self._settlement([d.id for task, d in flying if task.cancelled()])
        if settlement.done or settlement.retry or settlement.released:
            try:
                await self._db.write(outbox.settle, settlement, self._db.clock.now())
            except Exception:  # noqa: BLE001 - their leases make them due again
                log.warning("settling webhook calls at stop failed; due again after their lease")
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        outage = OutageLog(log, "delivering webhooks")
        while not self._stopping:
            self._wake.clear()  # a call ending from here on wakes the wait below
            try:
                await self.run_once()
            except Exception as exc:
                if not outage.failed(exc):
                    log.exception(
                        "delivering webhooks failed; trying again after the poll interval"
                    )
                await asyncio.sleep(self._poll)
            else:
                outage.ok()
            await self._idle()

    async def _idle(self) -> None:
        """Until a call ends (a result to settle, a slot to fill) or the poll interval passed
        (calls queued meanwhile): no claim while nothing changed, even when every
        configuration with due calls is at its cap.

        `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` swallows a cancellation
        that comes as the wait ends (a call just landed); a stop then waited forever for this
        loop, which kept making calls (with many calls failing fast, about one stop in ten)."""
        try:
            async with asyncio.timeout(self._poll):
                await self._wake.wait()
        except TimeoutError:
            return
        if self._flying and len(self._ended) < SETTLE_BATCH:
            await asyncio.sleep(SETTLE_LINGER)

    async def run_once(self) -> int:
        """Settle the calls that ended and claim due calls for the free slots, in one
        transaction; returns how many were claimed."""
        settlement = self._settlement([])
        ended, self._ended = self._ended, []
        ask = Ask(
            limit=self._in_flight - len(self._flying),
            cap=self._per_config,
            busy=dict(self._busy),
            lease=self._lease,
            # The database's time: a process whose clock runs ahead must not take a live lease.
            now=self._db.clock.now(),
        )
        try:
            claimed = await self._db.write(outbox.settle_and_claim, settlement, ask)
        except BaseException:
            self._ended[:0] = ended  # settled next time (or at stop)
            raise
        for d in claimed:
            self._launch(d)
        return len(claimed)

    def _launch(self, d: Delivery) -> None:
        task = asyncio.create_task(self._attempt(d), name=f"txmsg-webhook-{d.id}")
        self._flying[task] = d
        self._busy[d.event_id] += 1
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[str | None]) -> None:
        d = self._flying.pop(task)
        self._busy[d.event_id] -= 1
        if not self._busy[d.event_id]:
            del self._busy[d.event_id]
        if task.cancelled():
            return  # a stop: released there
        exc = task.exception()  # `_attempt` lets only what is not an Exception through
        self._ended.append((d, task.result() if exc is None else type(exc).__name__))
        self._wake.set()

    def _settlement(self, released: list[int]) -> Settlement:
        """The ended calls' outcomes: delivered, given up past `MAX_AGE`, or retried."""
        now = self._db.clock.now()
        s = Settlement(released=released)
        for delivery, error in self._ended:
            if error is None:
                s.done.append(delivery.id)
            elif now - delivery.created_at >= MAX_AGE:
                log.warning(
                    "webhook call %d of %s given up after %d attempts: %s",
                    delivery.id,
                    delivery.event_id,
                    delivery.attempts,
                    error,
                )
                s.done.append(delivery.id)
            else:
                due = now + timedelta(seconds=self._retry.delay(delivery.attempts))
                s.retry.append((delivery.id, due, error))
        return s

    async def _attempt(self, d: Delivery) -> str | None:
        """`_call`, whose unexpected errors are a failed attempt of this call alone.

        One call raising must not leave the batch unsettled: every call in it would be made
        again once its lease ran out, forever (a URL stored before URLs were checked as httpx
        parses them raised `InvalidURL` on every attempt). Retried with the usual backoff,
        given up after `MAX_AGE` like any failure.
        """
        try:
            return await self._call(d)
        except Exception as exc:  # noqa: BLE001 - logged below, without its message
            # The type only: the message or traceback may quote the URL (a token in its
            # query), and nothing here may log the secret or the call's content.
            log.warning(
                "webhook call %d of %s failed unexpectedly (%s); retried with backoff",
                d.id,
                d.event_id,
                type(exc).__name__,
            )
            return type(exc).__name__

    async def _call(self, d: Delivery) -> str | None:
        """None once the receiver answered 2xx; otherwise what went wrong (no content)."""
        assert self._client is not None
        body = encode(
            payload(d.id, d.pkey, d.event_id, d.status, d.interaction, d.at, d.reason, d.detail)
        )
        # The database's time: the receiver checks the signature's age against its own
        # clock, which the database's (kept by NTP, as a rule) is the best guess of here.
        signed_at = int(self._db.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(d.secret, signed_at, body),
            "User-Agent": "txmsg-webhooks",
        }
        try:
            response = await self._client.post(d.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
