"""`POST /api/v1/messages/{eventId}/publish?dry_run=true`: the draft against real payloads.

Renders the draft with the most recent stored triggers of the event (up to 100, those still
kept) and answers how many render, which fail and why, which render but would not be sent as
they are (`render_warnings`, as the preview has them: empty, or an SMS past Twilio's limit), and
for a sample of them the difference from what the published version renders for the same
payload. Each payload renders with the language variant a send would pick for it; each variant
no payload picks renders once with the latest payload (`variant_checks`). Nothing is written.
The payloads
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
    variant_for,
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


def _variables(
    row: Any, event_id: str, profile_based: bool, declared: tuple[str, ...], language: str | None
) -> Any:
    """A stored trigger's variables; a profile-based message sees the sample profile (as the
    preview), with the language the variant was picked for."""
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
        {**SAMPLE_PROFILE, "language": language} if profile_based else None,
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


class _Versions:
    """A message version's parts per variant (`None`: the default), each built once."""

    def __init__(self, content: dict[str, Any]) -> None:
        self.content = content
        self._sources: dict[str | None, MessageSource] = {}

    def source(self, variant: str | None) -> MessageSource:
        if variant not in self._sources:
            self._sources[variant] = MessageSource(message_parts(self.content, variant))
        return self._sources[variant]

    def for_language(self, language: str | None) -> tuple[str | None, MessageSource]:
        """The variant a send picks for `language` (`variant_for`, as the legs), and its parts."""
        variant = variant_for(self.content, language)
        return variant, self.source(variant)


def _prefix(variant: str | None) -> str:
    return f"variants.{variant}." if variant else ""


def _failure(
    problem: TemplateProblem, variant: str | None, source: MessageSource, payloads_shown: bool
) -> dict[str, str]:
    """The failed part as publish names it (`variants.fr.html`) and why, a marketer's reason
    free of data (`_for_marketers`, against the variant's own source)."""
    reason = problem.as_field_error().detail
    if not payloads_shown:
        reason = _for_marketers(problem, source.sources.get(problem.part, ""))
    return {"part": _prefix(variant) + problem.part, "reason": _bounded_reason(reason)}


def _warnings(channel: Channel, variant: str | None, out: dict[str, str]) -> list[Any]:
    prefix = _prefix(variant)
    return [{**w.as_dict(), "part": prefix + w.part} for w in render_warnings(channel, out)]


async def run(
    renderer: Renderer,
    event_id: str,
    channel: Channel,
    target: str,
    declared: tuple[str, ...],
    draft: dict[str, Any],
    published: dict[str, Any] | None,
    rows: list[Any],
    languages: list[str | None] | None = None,
    *,
    payloads_shown: bool = True,
) -> dict[str, Any]:
    """The dry run's answer; every render goes through `renderer` (worker processes, bounded
    like any other). Raises `TemplateProblems` when the draft does not compile.

    Each row renders with the variant a send would pick for its profile's language
    (`languages`, one per row, as targeting finds the profile now); each variant no row picks
    renders once more, with the most recent row as if its profile had that language. So the
    renders are at most `len(rows)` + one per variant (`MAX_VARIANTS`), and the sample's five.
    """
    profile_based = target == TargetType.PROFILE
    langs: list[str | None] = languages if languages is not None else [None] * len(rows)
    drafts = _Versions(draft)
    await renderer.check(drafts.source(None))
    befores = _Versions(published) if published is not None else None
    chosen = [drafts.for_language(language) for language in langs]
    variables = [
        _variables(row, event_id, profile_based, declared, language)
        for row, language in zip(rows, langs, strict=True)
    ]
    picked = {variant for variant, _ in chosen}
    # A variant no recent event picks is checked with the latest payload all the same: a
    # broken French HTML is found before the next French recipient's send fails.
    unpicked = [v for v in draft.get("variants") or {} if v not in picked] if rows else []
    checks = [
        _variables(rows[0], event_id, profile_based, declared, variant) for variant in unpicked
    ]
    outs = await asyncio.gather(
        *(renderer.render(source, v) for (_, source), v in zip(chosen, variables, strict=True)),
        *(
            renderer.render(drafts.source(variant), v)
            for variant, v in zip(unpicked, checks, strict=True)
        ),
        return_exceptions=True,
    )
    per_variant = {v: {"events": 0, "rendered": 0} for v in draft.get("variants") or {}}
    answer = await _per_event(
        renderer,
        channel,
        rows,
        langs,
        chosen,
        variables,
        outs[: len(rows)],
        befores,
        per_variant,
        payloads_shown,
    )
    variant_checks = [
        _variant_check(channel, variant, rows[0].pkey, drafts.source(variant), out, payloads_shown)
        for variant, out in zip(unpicked, outs[len(rows) :], strict=True)
    ]
    return {
        "eventId": event_id,
        "dry_run": True,
        "events": len(rows),
        **answer,
        "variants": per_variant,
        "variant_checks": variant_checks,
    }


async def _per_event(
    renderer: Renderer,
    channel: Channel,
    rows: list[Any],
    langs: list[str | None],
    chosen: list[tuple[str | None, MessageSource]],
    variables: list[Any],
    outs: list[Any],
    befores: _Versions | None,
    per_variant: dict[str, dict[str, int]],
    payloads_shown: bool,
) -> dict[str, Any]:
    """`rendered`, `failed`, `render_warnings` and `sample` of the recent events; counts each
    variant's events and renders into `per_variant`."""
    failed: list[dict[str, Any]] = []
    warned: list[dict[str, Any]] = []
    sample: list[dict[str, Any]] = []
    rendered = 0
    for row, language, out, row_variables, (variant, source) in zip(
        rows, langs, outs, variables, chosen, strict=True
    ):
        if variant is not None:
            per_variant[variant]["events"] += 1
        if isinstance(out, TemplateProblems):
            failure = _failure(out.problems[0], variant, source, payloads_shown)
            failed.append({"PKey": row.pkey, **failure})
            continue
        if isinstance(out, BaseException):
            raise out
        rendered += 1
        if variant is not None:
            per_variant[variant]["rendered"] += 1
        warned.extend({"PKey": row.pkey, **w} for w in _warnings(channel, variant, out))
        if befores is None or len(sample) >= SAMPLE_SIZE or not payloads_shown:
            continue
        # Against what the published version sends this recipient: its variant for the language.
        _, before = befores.for_language(language)
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
    return {"rendered": rendered, "failed": failed, "render_warnings": warned, "sample": sample}


def _variant_check(
    channel: Channel,
    variant: str,
    pkey: str,
    source: MessageSource,
    out: Any,
    payloads_shown: bool,
) -> dict[str, Any]:
    """How a variant no recent event picks rendered with the latest payload."""
    check: dict[str, Any] = {"language": variant, "PKey": pkey}
    if isinstance(out, TemplateProblems):
        failure = _failure(out.problems[0], variant, source, payloads_shown)
        return {**check, "rendered": False, **failure, "render_warnings": []}
    if isinstance(out, BaseException):
        raise out
    return {**check, "rendered": True, "render_warnings": _warnings(channel, variant, out)}
