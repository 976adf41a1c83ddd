"""Delivers the status-webhook outbox: batches of signed POSTs, retried with backoff.

Runs beside the dispatcher and shares nothing with it but the database: a slow or failing
receiver delays only its own calls, never a send. Delivery is at-least-once (a call whose
answer was lost is made again); the payload's `id` lets receivers drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

import httpx

from txmsg.core.retry import RetryPolicy
from txmsg.core.webhooks import SIGNATURE_HEADER, encode, payload, signature
from txmsg.store import webhook_outbox as outbox
from txmsg.store.db import Database
from txmsg.store.webhook_outbox import Delivery

log = logging.getLogger(__name__)

BATCH = 100
# A call not delivered within this time is given up (and logged).
MAX_AGE = timedelta(hours=24)


class WebhookSender:
    def __init__(
        self,
        db: Database,
        retry: RetryPolicy,
        *,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self._db = db
        self._retry = retry
        self._poll = poll_interval
        self._timeout = timeout
        # A claimed call not settled within this time (a crash) is due again.
        self._lease = timedelta(seconds=timeout * 2 + 30)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="txmsg-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                delivered = await self.run_once()
            except Exception:
                log.exception("delivering webhooks failed; trying again after the poll interval")
                delivered = 0
            if delivered < BATCH:
                await asyncio.sleep(self._poll)

    async def run_once(self) -> int:
        """Claim one batch of due calls and make them concurrently; returns the batch size."""
        # The database's time: a process whose clock runs ahead must not take a live lease.
        batch = await self._db.write(outbox.claim, BATCH, self._lease, self._db.clock.now())
        if not batch:
            return 0
        results = await asyncio.gather(*(self._attempt(d) for d in batch))
        now = self._db.clock.now()
        done: list[int] = []
        retry: list[tuple[int, datetime, str]] = []
        for delivery, error in zip(batch, results, strict=True):
            if error is None:
                done.append(delivery.id)
            elif now - delivery.created_at >= MAX_AGE:
                log.warning(
                    "webhook call %d of %s given up after %d attempts: %s",
                    delivery.id,
                    delivery.event_id,
                    delivery.attempts,
                    error,
                )
                done.append(delivery.id)
            else:
                due = now + timedelta(seconds=self._retry.delay(delivery.attempts))
                retry.append((delivery.id, due, error))
        await self._db.write(outbox.settle, done, retry)
        return len(batch)

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
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(d.secret, int(time.time()), body),
            "User-Agent": "txmsg-webhooks",
        }
        try:
            response = await self._client.post(d.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
