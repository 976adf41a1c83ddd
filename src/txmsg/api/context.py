"""What handlers share: settings, the database, caches and the trigger funnel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from txmsg.config import Settings
from txmsg.core.queue import EnqueueResult, NewEvent
from txmsg.store.batcher import Batcher
from txmsg.store.db import Database
from txmsg.store.event_configs import TriggerTargets
from txmsg.store.keys import KeyResolver


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    keys: KeyResolver
    targets: TriggerTargets
    enqueue: Batcher[NewEvent, EnqueueResult]
    # Tells the dispatcher that events may have become due (resume, message publish).
    notify_work: Callable[[], None]


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.txmsg
    return ctx
