"""`POST /api/v1/messages/{eventId}/publish?dry_run=true`: the draft against real payloads.

Renders the draft with the most recent stored triggers of the event (up to 100, those still
kept) and answers how many render, which fail and why, which render but would not be sent as
they are (`render_warnings`, as the preview has them: empty, or an SMS past Twilio's limit), and
for a sample of them the difference from what the published version renders for the same
payload. Nothing is written. The payloads
are personal data: without `payloads_shown` (a marketer's run) the answer leaves out what could
quote them, the reasons and the sample.
"""

from __future__ import annotations

import asyncio
import difflib
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
            failure = {"PKey": row.pkey, "part": first.field}
            if payloads_shown:
                failure["reason"] = first.detail
            failed.append(failure)
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
