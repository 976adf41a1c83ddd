"""What handlers share: settings, the database, caches and the trigger funnel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from txmsg.config import Settings
from txmsg.core.delivery import LogEntry
from txmsg.core.feedback import Feedback
from txmsg.core.mime import Sender
from txmsg.core.queue import EnqueueResult, NewBatch, NewEvent
from txmsg.sandbox.pool import Renderer, shared_renderer
from txmsg.store.archives import Restored
from txmsg.store.db import Database
from txmsg.store.event_configs import TriggerTargets
from txmsg.store.keys import KeyResolver
from txmsg.store.secrets import ServerSecrets
from txmsg.store.sms_receipts import CallbackSigners


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    keys: KeyResolver
    targets: TriggerTargets
    # The write funnel: answers once the event's transaction committed.
    enqueue: Callable[[NewEvent], Awaitable[EnqueueResult]]
    # The same for a batch trigger: its events in one transaction, under one key.
    enqueue_batch: Callable[[NewBatch], Awaitable[EnqueueResult]]
    # Configuration changed here: drop cached routes and signers; queued events may be due.
    config_changed: Callable[[], None]
    # The write funnel for delivery-log entries (receipts): answers once committed.
    append_log: Callable[[LogEntry], Awaitable[None]]
    # The write funnel for bounces and complaints after acceptance (all or none).
    record_feedback: Callable[[list[Feedback]], Awaitable[None]]
    # Proofs: (eventId, addresses, build(sender, address) -> message bytes) -> one result each.
    send_proof: Callable[
        [str, list[str], Callable[[Sender, str], bytes]], Awaitable[list[dict[str, Any]]]
    ]
    # Brings an event's expired interaction data back (the engine's lifecycle).
    restore_interactions: Callable[[str], Awaitable[Restored]]
    # Who signs Twilio's status callbacks, per account SID (cached).
    signers: CallbackSigners
    # Server secrets (tracking links), read once per process.
    secrets: ServerSecrets


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.txmsg
    return ctx


def renderer(request: Request) -> Renderer:
    """The process's message renderer (worker processes), bounded by the settings."""
    return shared_renderer(context(request).settings.render_limits)
