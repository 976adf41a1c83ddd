"""A batch trigger's body: `{"events": [...]}`, each item checked as a single trigger's body.

The envelope is all or nothing (a 400 naming `events`); its items are not: each is accepted or
refused on its own, a refusal naming the item's index and field (`events[3].email`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from txmsg.core.errors import DomainError, FieldError, invalid, json_pointer
from txmsg.core.json_numbers import out_of_range, oversized
from txmsg.core.trigger import TriggerRequest
from txmsg.core.validation import reject_unknown, require_object

MAX_BATCH_EVENTS = 1000


def parse_batch(
    body: Any, parse_one: Callable[[Any], TriggerRequest], exact: Any = None
) -> list[TriggerRequest | DomainError]:
    """One result per item of `events`, in order: its trigger, or its problem. `exact`: the
    body read with its integers exact (json_numbers.read_exact), when it may hold one past 64
    bits: an item holding one is refused, naming it, as a single trigger would be."""
    return [
        parse_item(index, item, item_exact, parse_one)
        for index, (item, item_exact) in enumerate(batch_items(body, exact))
    ]


def batch_items(body: Any, exact: Any = None) -> list[tuple[Any, Any]]:
    """The envelope checked, all or nothing (a 400 naming `events`): its items in order, each
    with its exact reading (None when `exact` is None)."""
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
    exact_items = _exact_items(exact, items)
    return list(zip(items, exact_items or [None] * len(items), strict=True))


def parse_item(
    index: int, item: Any, exact: Any, parse_one: Callable[[Any], TriggerRequest]
) -> TriggerRequest | DomainError:
    """Item `index` of a batch: its trigger, or its problem naming `events[index]...`."""
    try:
        found = oversized(exact) if exact is not None else None
        if found is not None:
            raise out_of_range(found)
        return parse_one(item)
    except DomainError as exc:
        return within(exc, f"events[{index}]")


def _exact_items(exact: Any, items: list[Any]) -> list[Any] | None:
    """The items of `events` as read exactly, None when there is no such reading."""
    if exact is None:
        return None
    found = exact.get("events") if isinstance(exact, dict) else None
    if not isinstance(found, list) or len(found) != len(items):
        # Both parsers keep the last of repeated keys, so this does not happen; if it did,
        # the body would be refused whole as a single trigger's is.
        found = oversized(exact)
        if found is not None:
            raise out_of_range(found)
        return None
    return found


def within(error: DomainError, prefix: str) -> DomainError:
    """`error` about one item of a batch: its fields named from the batch body's root."""
    root = json_pointer(prefix)
    errors = [
        FieldError(
            prefix if e.field == "body" else f"{prefix}.{e.field}",
            e.detail,
            pointer=root + e.where(),
        )
        for e in error.errors
    ] or [FieldError(prefix, error.detail)]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return DomainError(f"{first.field}: {first.detail}{more}", error.status, error.title, errors)
