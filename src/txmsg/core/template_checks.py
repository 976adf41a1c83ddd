"""Static checks of a template against what its event provides, on Jinja2's own syntax tree.

A name a template reads that is none of the event's declared fields (`ctx.*`), the profile's
fields (profile-based events) or the engine's variables (`event.*`, `unsubscribe_url`) is a
warning, with its part, line, column and the closest known name (`difflib`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta, nodes
from jinja2.compiler import Frame

from txmsg.core.templates import ENVIRONMENT, MAX_TEMPLATE_SIZE, event_variables
from txmsg.core.variants import SAMPLE_PROFILE

# Event variables every template sees, and the profile's fields (as at preview and send);
# `profile.attributes` holds free-form data, not checked below it.
EVENT_FIELDS = tuple(event_variables("", "", None, datetime(2000, 1, 1, tzinfo=UTC), None, None))
PROFILE_FIELDS = tuple(SAMPLE_PROFILE)
# What a template may call on `ctx` itself (`{% for name, value in ctx.items() %}`).
CTX_METHODS = ("items", "keys", "values", "get")
# Objects whose attributes are checked; any other top-level name must simply exist.
_CHECKED = ("ctx", "event", "profile")
MAX_WARNINGS = 100


@dataclass(frozen=True, slots=True)
class TemplateWarning:
    """An unknown name (or a syntax error, `name` None) at a part's line and column."""

    part: str
    line: int | None
    column: int | None
    name: str | None
    suggestion: str | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def known_names(fields: Iterable[str], profile_based: bool) -> dict[str, tuple[str, ...]]:
    """What templates of an event may read: top-level name -> its attributes (() = any)."""
    known: dict[str, tuple[str, ...]] = {
        "ctx": (*fields, *CTX_METHODS),
        "event": EVENT_FIELDS,
    }
    if profile_based:
        known["profile"] = PROFILE_FIELDS
        known["unsubscribe_url"] = ()
    for name in ENVIRONMENT.globals:
        known[name] = ()
    return known


def _reads(tree: nodes.Template, free: set[str]) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every read of a free name, one attribute deep for objects."""
    parents: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr: object = None
        if isinstance(node, nodes.Getattr):
            target, attr = node.node, node.attr
        elif isinstance(node, nodes.Getitem):
            target = node.node
            if isinstance(node.arg, nodes.Const):
                attr = node.arg.value  # ctx[some_variable]: not known statically
        else:
            continue
        if not isinstance(target, nodes.Name) or target.name not in free:
            continue
        if isinstance(attr, str):
            parents.add(id(target))
            yield f"{target.name}.{attr}", node.lineno
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name in free and id(name) not in parents:
            yield name.name, name.lineno


def _column(source_lines: list[str], line: int, dotted: str) -> int | None:
    """1-based column of `dotted` on its line (`ctx.a` also as `ctx['a']`), if found."""
    if not 1 <= line <= len(source_lines):
        return None
    head, _, attr = dotted.partition(".")
    pattern = rf"\b{re.escape(head)}\b"
    if attr:
        pattern += rf"\s*(?:\.\s*{re.escape(attr)}\b|\[\s*['\"]{re.escape(attr)}['\"]\s*\])"
    found = re.search(pattern, source_lines[line - 1])
    return found.start() + 1 if found else None


def _unknown(dotted: str, known: dict[str, tuple[str, ...]]) -> bool:
    head, _, attr = dotted.partition(".")
    if head not in known:
        return True
    return bool(attr) and head in _CHECKED and attr not in known[head]


def _candidates(known: dict[str, tuple[str, ...]]) -> list[str]:
    out = list(known)
    for head, attrs in known.items():
        out.extend(f"{head}.{a}" for a in attrs)
    return out


class _FreeNames(meta.TrackingCodeGenerator):
    """`meta.find_undeclared_variables` without constant folding: folding `{{ 'x' * 10**9 }}`
    built (and repr'd) the gigabyte string here, in the API process, for seconds on the event
    loop; only the render worker, whose memory is bounded, may try that."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.optimizer = None

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        raise nodes.Impossible  # an output is never folded: evaluated at run time


def _free_names(tree: nodes.Template) -> set[str]:
    names = _FreeNames(ENVIRONMENT)  # the environment that parsed `tree`
    names.visit(tree)
    return names.undeclared_identifiers


def check_part(part: str, source: str, known: dict[str, tuple[str, ...]]) -> list[TemplateWarning]:
    """The warnings of one part: its syntax error, or each unknown name where it is first read."""
    if len(source) > MAX_TEMPLATE_SIZE:
        return [TemplateWarning(part, None, None, None, None, "template is too large")]
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        detail = f"line {exc.lineno}: {exc.message or exc}"
        return [TemplateWarning(part, exc.lineno, None, None, None, detail)]
    except RecursionError:
        return [TemplateWarning(part, None, None, None, None, "the template is nested too deeply")]
    free = _free_names(tree)
    lines = source.splitlines()
    candidates = _candidates(known)
    warnings: list[TemplateWarning] = []
    seen: set[str] = set()
    for read, line in sorted(_reads(tree, free), key=lambda r: r[1]):
        head = read.partition(".")[0]
        dotted = read if head in known else head  # an unknown object: name the object
        if dotted in seen or not _unknown(dotted, known):
            continue
        seen.add(dotted)
        close = difflib.get_close_matches(dotted, candidates, n=1, cutoff=0.6)
        suggestion = close[0] if close else None
        hint = f": did you mean `{suggestion}`?" if suggestion else ""
        column = _column(lines, line, dotted)
        detail = f"line {line}: `{dotted}` is not provided by this event{hint}"
        warnings.append(TemplateWarning(part, line, column, dotted, suggestion, detail))
        if len(warnings) >= MAX_WARNINGS:
            break
    return warnings


def check_parts(
    parts: Iterable[tuple[str, str]], known: dict[str, tuple[str, ...]]
) -> list[TemplateWarning]:
    """The warnings of all parts, in order (part names as the API spells them)."""
    out: list[TemplateWarning] = []
    for part, source in parts:
        out.extend(check_part(part, source, known))
    return out[:MAX_WARNINGS]
