"""Entity tags (RFC 9110 §8.8.3): strong validators made from content, and If-Match's test."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson


def content_tag(value: Any) -> str:
    """A strong entity tag of the JSON-shaped `value`: equal content, equal tag, on either
    engine (keys sorted: PostgreSQL's jsonb keeps no order)."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits (jsonb reads 1e300 back as one)
        raw = json.dumps(value, sort_keys=True).encode()
    return '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'


def if_match_holds(field_value: str, current: str) -> bool:
    """Whether an If-Match field value admits the `current` tag. Strong comparison: a weak
    tag (`W/"..."`) never matches; `*` matches whatever exists."""
    if field_value.strip() == "*":
        return True
    return current in (tag.strip() for tag in field_value.split(","))
