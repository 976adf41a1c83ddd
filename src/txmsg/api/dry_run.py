"""`POST /api/v1/messages/{eventId}/publish?dry_run=true`: the draft against real payloads.

Renders the draft with the most recent stored triggers of the event (up to 100, those still
kept) and answers how many render, which fail and why, which render but would not be sent as
they are (`render_warnings`, as the preview has them: empty, or an SMS past Twilio's limit), and
for a sample of them the difference from what the published version renders for the same
payload. Nothing is written. The payloads
are personal data: without `payloads_shown` (a marketer's run) the answer leaves out the sample,
and gives a failure's reason only when it cannot carry the payload (`_for_marketers`).
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
    TemplateProblem,
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

# A marketer's dry run says why an event fails only in words that cannot carry its payload:
# the reasons below are made of the template's names and the engine's own words. Any other
# reason (one that may quote a value, or a value derived from one: lower-cased, sliced, a
# number) reads as `_UNSHOWN`; an admin's run gives it whole.
_DATA_FREE = re.compile(
    r"division by zero|the template recurses too deeply"
    r"|the rendered [A-Za-z. ]{1,40} is larger than [0-9.]{1,8} (?:KB|MB|bytes)"
    r"|rendering took longer than the [0-9.]{1,8} s a message may take"
)
_NOT_IN_DATA = re.compile(r"((?:ctx|event|profile)(?:\.[A-Za-z_]\w{0,63}){1,8}) is not in the data")
_UNSHOWN = "this event's data does not render (an admin's dry run shows the error)"


def _for_marketers(problem: TemplateProblem, source: str) -> str:
    """`problem` as a marketer's dry run tells it (`line N: ` and a reason free of data)."""
    where = f"line {problem.line}: " if problem.line else ""
    if _DATA_FREE.fullmatch(problem.reason):
        return where + problem.reason
    named = _NOT_IN_DATA.fullmatch(problem.reason)
    # The name as the template writes it, whole (not a value that happens to be in it).
    if named and re.search(rf"(?<![\w.]){re.escape(named.group(1))}(?![\w.])", source):
        return where + problem.reason
    return where + _UNSHOWN


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
            problem = out.problems[0]
            first = problem.as_field_error()
            reason = first.detail
            if not payloads_shown:
                reason = _for_marketers(problem, draft_source.sources.get(problem.part, ""))
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
