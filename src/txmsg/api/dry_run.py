"""`POST /api/v1/messages/{eventId}/publish?dry_run=true`: the draft against real payloads.

Renders the draft with the most recent stored triggers of the event (up to 100, those still
kept) and answers how many render, which fail and why, which render but would not be sent as
they are (`render_warnings`, as the preview has them: empty, or an SMS past Twilio's limit), and
for a sample of them the difference from what the published version renders for the same
payload. Nothing is written. The payloads
are personal data: without `payloads_shown` (a marketer's run) the answer leaves out the sample,
and each failure's reason has what could quote a payload left out (`_without_payload`).
"""

from __future__ import annotations

import asyncio
import difflib
import re
from typing import Any

from txmsg.core.kinds import Channel, TargetType
from txmsg.core.render_checks import render_warnings
from txmsg.core.templates import (
    MessageSource,
    TemplateProblems,
    event_variables,
    message_parts,
    template_variables,
)
from txmsg.core.variants import SAMPLE_PROFILE, SAMPLE_UNSUBSCRIBE_URL
from txmsg.sandbox.pool import Renderer

MAX_EVENTS = 100
SAMPLE_SIZE = 5
MAX_DIFF_LINES = 200
MAX_REASON_CHARS = 300

# What error messages quote: Python's repr() of a name, a type or a value ('x', "x").
_QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"")
# The quoted words of error messages that are about types, never data: `'dict object'`,
# `'str' and 'float'`, `'NoneType'`.
_TYPE_WORDS = re.compile(r"[a-z_]{1,20}( object)?|NoneType|Undefined|Markup")


def _scalars(value: Any) -> set[str]:
    """The text of every scalar in `value` (a payload's ctx, nested)."""
    if isinstance(value, dict):
        return set().union(*(_scalars(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_scalars(v) for v in value)) if value else set()
    return {str(value)} if value is not None else set()


def _without_payload(reason: str, source: str, row: Any) -> str:
    """`reason` without what could quote the payload: a quoted word is kept when the template
    itself has it (a name) or it names a type (`'dict object'`), and is none of the payload's
    values; anything else quoted reads `'…'`, and a payload value met elsewhere `…`."""
    values = _scalars(row.ctx) | {v for v in (row.email, row.mobile_phone) if v}

    def keep(m: re.Match[str]) -> str:
        word = m.group(0)[1:-1]
        named = word in source or _TYPE_WORDS.fullmatch(word) is not None
        return m.group(0) if named and word not in values else "'…'"

    out = _QUOTED.sub(keep, reason)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 3 and value not in source:
            out = out.replace(value, "…")
    return out


def _bounded_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def _variables(row: Any, event_id: str, profile_based: bool, declared: tuple[str, ...]) -> Any:
    event = event_variables(
        row.pkey,
        event_id,
        row.email,
        row.event_date,
        row.scheduled_at,
        row.expires_at,
        row.mobile_phone,
    )
    return template_variables(
        row.ctx,
        event,
        SAMPLE_PROFILE if profile_based else None,
        SAMPLE_UNSUBSCRIBE_URL if profile_based else None,
        declared,
    )


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """Per part, the unified difference (empty parts left out: they did not change)."""
    out: dict[str, str] = {}
    for part in sorted(set(before) | set(after)):
        lines = list(
            difflib.unified_diff(
                before.get(part, "").splitlines(),
                after.get(part, "").splitlines(),
                f"published/{part}",
                f"draft/{part}",
                lineterm="",
            )
        )
        if lines:
            out[part] = "\n".join(lines[:MAX_DIFF_LINES])
    return out


async def run(
    renderer: Renderer,
    event_id: str,
    channel: Channel,
    target: str,
    declared: tuple[str, ...],
    draft: dict[str, Any],
    published: dict[str, Any] | None,
    rows: list[Any],
    *,
    payloads_shown: bool = True,
) -> dict[str, Any]:
    """The dry run's answer; every render goes through `renderer` (worker processes, bounded
    like any other). Raises `TemplateProblems` when the draft does not compile."""
    profile_based = target == TargetType.PROFILE
    draft_source = MessageSource(message_parts(draft))
    await renderer.check(draft_source)
    before = MessageSource(message_parts(published)) if published is not None else None
    variables = [_variables(row, event_id, profile_based, declared) for row in rows]
    outs = await asyncio.gather(
        *(renderer.render(draft_source, v) for v in variables), return_exceptions=True
    )
    failed: list[dict[str, Any]] = []
    warned: list[dict[str, Any]] = []
    sample: list[dict[str, Any]] = []
    rendered = 0
    for row, out, row_variables in zip(rows, outs, variables, strict=True):
        if isinstance(out, TemplateProblems):
            first = out.problems[0].as_field_error()
            reason = first.detail
            if not payloads_shown:
                source = draft_source.sources.get(out.problems[0].part, "")
                reason = _without_payload(reason, source, row)
            failed.append(
                {"PKey": row.pkey, "part": first.field, "reason": _bounded_reason(reason)}
            )
            continue
        if isinstance(out, BaseException):
            raise out
        rendered += 1
        warned.extend({"PKey": row.pkey, **w.as_dict()} for w in render_warnings(channel, out))
        if before is None or len(sample) >= SAMPLE_SIZE or not payloads_shown:
            continue
        try:
            old: dict[str, str] | None = await renderer.render(before, row_variables)
        except TemplateProblems:
            old = None
        sample.append(
            {
                "PKey": row.pkey,
                "published_failed": old is None,
                "diff": _diff(old or {}, out),
            }
        )
    return {
        "eventId": event_id,
        "dry_run": True,
        "events": len(rows),
        "rendered": rendered,
        "failed": failed,
        "render_warnings": warned,
        "sample": sample,
    }
