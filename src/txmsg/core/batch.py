"""A batch trigger's body: `{"events": [...]}`, each item checked as a single trigger's body.

The envelope is all or nothing (a 400 naming `events`); its items are not: each is accepted or
refused on its own, a refusal naming the item's index and field (`events[3].email`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from txmsg.core.errors import DomainError, FieldError, invalid
from txmsg.core.trigger import TriggerRequest
from txmsg.core.validation import reject_unknown, require_object

MAX_BATCH_EVENTS = 1000


def parse_batch(
    body: Any, parse_one: Callable[[Any], TriggerRequest]
) -> list[TriggerRequest | DomainError]:
    """One result per item of `events`, in order: its trigger, or its problem."""
    reject_unknown(require_object(body), {"events"})
    items = body.get("events")
    if not isinstance(items, list):
        raise invalid("events", "is required and must be an array of trigger bodies")
    if not items:
        raise invalid("events", "must hold at least one event")
    if len(items) > MAX_BATCH_EVENTS:
        raise invalid(
            "events", f"must hold at most {MAX_BATCH_EVENTS} events (this one has {len(items)})"
        )
    results: list[TriggerRequest | DomainError] = []
    for index, item in enumerate(items):
        try:
            results.append(parse_one(item))
        except DomainError as exc:
            results.append(within(exc, f"events[{index}]"))
    return results


def within(error: DomainError, prefix: str) -> DomainError:
    """`error` about one item of a batch: its fields named from the batch body's root."""
    errors = [
        FieldError(prefix if e.field == "body" else f"{prefix}.{e.field}", e.detail)
        for e in error.errors
    ] or [FieldError(prefix, error.detail)]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return DomainError(f"{first.field}: {first.detail}{more}", error.status, error.title, errors)
