"""Sandboxed Jinja2 rendering of transactional messages, compiled once per published version."""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from txmsg.core.errors import DomainError, FieldError, unprocessable
from txmsg.core.kinds import Channel
from txmsg.core.timeutil import isoformat

EMAIL_PARTS = ("subject", "html", "text")
SMS_PARTS = ("body",)  # plain text: no HTML escaping


def parts_of(channel: str) -> tuple[str, ...]:
    """The parts of a transactional message of `channel`."""
    return SMS_PARTS if channel == Channel.SMS else EMAIL_PARTS


MAX_TEMPLATE_SIZE = 256 * 1024


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, reading `ctx.firstName` as the item of the data's dict first.

    Jinja tries the attribute first, and a missing attribute costs an exception per access
    (most of a render's time); it also lets dict methods shadow data fields named `items`,
    `keys` or `values`. Items of plain dicts are data, safe to read; anything else goes
    through the sandbox's own checks.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return _Sandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
        # No constant folding: Jinja's optimizer would evaluate `'x' * 10**9` or
        # `'x'|center(10**9)` while compiling, outside any render's bounds.
        optimized=False,
    )


# HTML parts are autoescaped; subject and text are not (they are not HTML).
_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)
# The syntax (and globals) every part shares, for static checks of a template.
ENVIRONMENT: ImmutableSandboxedEnvironment = _TEXT_ENV


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    part: str
    line: int | None
    reason: str

    def as_field_error(self) -> FieldError:
        where = f"line {self.line}: " if self.line else ""
        return part_error(self.part, where + self.reason)


def part_error(part: str, detail: str) -> FieldError:
    """An error in a message part (`subject`, `variants.fr.body`...): the SMS text's is
    `/body`, not the pointer to the whole request body that a field named `body` means
    elsewhere."""
    return FieldError(part, detail, pointer="/body" if part == "body" else None)


def part_pointers(exc: DomainError) -> DomainError:
    """`exc`, its errors about a part named `body` pointing at that part (a draft's body
    was read as an object already: no error there is about the whole request body)."""
    for error in exc.errors:
        if error.field == "body" and error.pointer is None:
            error.pointer = "/body"
    return exc


class TemplateProblems(Exception):
    def __init__(self, problems: list[TemplateProblem]) -> None:
        super().__init__("; ".join(f"{p.part}: {p.reason}" for p in problems))
        self.problems = problems

    def as_domain_error(self, action: str) -> DomainError:
        errors = [p.as_field_error() for p in self.problems]
        first = errors[0]
        return unprocessable(
            f"the template cannot be {action}: {first.field}: {first.detail}", errors
        )


def _compile_part(part: str, source: str) -> Template:
    env = _HTML_ENV if part == "html" else _TEXT_ENV
    # Compiling with the part as file name makes Jinja report template lines in tracebacks.
    code = env.compile(source, name=part, filename=part)
    # A plain dict of the globals, not Jinja's ChainMap: each render copies them into its
    # context, and copying a ChainMap was a tenth of a render.
    return env.template_class.from_code(env, code, dict(env.make_globals(None)), None)


def _runtime_line(exc: BaseException, part: str) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == part:
            line = frame.lineno
    return line


class MessageSource:
    """The parts of one message version, and a key naming them (compiled once per key)."""

    __slots__ = ("key", "part_names", "sources")

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = dict(sources)
        self.part_names = tuple(self.sources)
        text = json.dumps(self.sources, sort_keys=True, ensure_ascii=False)
        self.key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CompiledMessage:
    """The compiled parts of one message version. Build once; render many times, concurrently."""

    __slots__ = ("_sources", "_templates")

    def __init__(self, sources: dict[str, str]) -> None:
        problems: list[TemplateProblem] = []
        templates: dict[str, Template] = {}
        for part, source in sources.items():
            if len(source) > MAX_TEMPLATE_SIZE:
                problems.append(TemplateProblem(part, None, "template is too large"))
                continue
            try:
                templates[part] = _compile_part(part, source)
            except TemplateSyntaxError as exc:
                problems.append(TemplateProblem(part, exc.lineno, exc.message or str(exc)))
            except RecursionError:
                problems.append(TemplateProblem(part, None, "the template is nested too deeply"))
        if problems:
            raise TemplateProblems(problems)
        self._templates = templates
        self._sources = dict(sources)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self._templates)

    def render(self, variables: dict[str, Any], max_bytes: int | None = None) -> dict[str, str]:
        """Every part rendered; a part past `max_bytes` (UTF-8) stops as soon as it is."""
        out: dict[str, str] = {}
        problems: list[TemplateProblem] = []
        for part in self._templates:
            try:
                out[part] = self.render_part(part, variables, max_bytes)
            except TemplateProblems as exc:
                problems.extend(exc.problems)
        if problems:
            raise TemplateProblems(problems)
        return out

    def render_part(
        self, part: str, variables: dict[str, Any], max_bytes: int | None = None
    ) -> str:
        """One part; raises `TemplateProblems` naming it when it cannot be rendered."""
        try:
            text = _bounded(self._templates[part], _with_unset(variables), max_bytes)
        except OutputTooLarge as exc:
            problem = TemplateProblem(part, None, exc.reason(part))
        except SecurityError as exc:
            problem = TemplateProblem(part, _runtime_line(exc, part), _forbidden(exc))
        except UndefinedError as exc:
            line = _runtime_line(exc, part)
            problem = TemplateProblem(part, line, _undefined(exc, self._sources[part], line))
        except TemplateError as exc:
            problem = TemplateProblem(part, _runtime_line(exc, part), str(exc))
        except RecursionError:
            problem = TemplateProblem(part, None, "the template recurses too deeply")
        except MemoryError:
            raise  # a bound of the render worker's, which names it
        except Exception as exc:
            # Raised by the template's own evaluation, with the data given: 1/0, int("x"),
            # a filter's assertion (`truncate(2)`), `cycler()` without items. An exception
            # that did not come through the template's code is the engine's, not its.
            line = _runtime_line(exc, part)
            if line is None and not isinstance(exc, _DATA_ERRORS):
                raise
            # The error's own words ("division by zero"), not Python's name for it.
            problem = TemplateProblem(part, line, str(exc) or type(exc).__name__)
        else:
            reason = _not_text(text)
            if reason is None:
                return text
            problem = TemplateProblem(part, None, reason)
        raise TemplateProblems([problem])


# Errors of expressions on the data, whether or not their traceback shows the template's line.
_DATA_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError)


def _not_text(text: str) -> str | None:
    """Why a rendered part cannot go in a message, if it cannot: a lone surrogate (which
    `'%c'|format(55296)` makes) has no UTF-8 form, so neither a mail, an SMS nor JSON holds
    it. Checked once here, where every part is made."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"renders U+{ord(text[exc.start]):04X}, a lone surrogate, which is not text"
    return None


# Engine errors in a marketer's words. Jinja's for a name without a value: "'dict object' has
# no attribute 'cartTotl'", "'amount' is undefined"; the sandbox's: "access to attribute
# '__class__' of 'str' object is unsafe."
_NO_ATTRIBUTE = re.compile(r"^'(\w+) object' has no attribute '(.*)'$", re.S)
_UNDEFINED = re.compile(r"^'(.*)' is undefined$", re.S)
_UNSAFE_ATTRIBUTE = re.compile(r"attribute '([^']*)'")
_KINDS = {
    "str": "a text",
    "int": "a number",
    "float": "a number",
    "list": "a list",
    "bool": "true or false",
}
_PART_NAMES = {"html": "HTML", "body": "SMS text"}


def _undefined(exc: UndefinedError, source: str, line: int | None) -> str:
    """ "ctx.cartTotl is not in the data", as the template spells the name where it can."""
    message = str(exc)
    attribute, undefined = _NO_ATTRIBUTE.match(message), _UNDEFINED.match(message)
    name = attribute.group(2) if attribute else undefined.group(1) if undefined else None
    if name is None:
        return message
    if not name.isidentifier() or not _whole(name, source):
        # A key of the data's (`{}[ctx.key]`), not a name the template writes: as Jinja has it.
        return f"'{name}' is not in the data" if attribute else f"'{name}' is not defined"
    lines = source.split("\n")
    where = lines[line - 1] if line and line <= len(lines) else source
    dotted = _read_as(name, where)
    if attribute and attribute.group(1) != "dict":
        owner = dotted[:-1] if dotted else "it"
        kind = _KINDS.get(attribute.group(1), "a " + attribute.group(1))
        return f"{owner} is {kind}, which has no {name}"
    if dotted:
        return f"{dotted}{name} is not in the data"
    return f"{name} is not in the data" if attribute else f"{name} is not defined"


_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _whole(name: str, source: str) -> bool:
    """Whether the template's expressions (not its text) write `name`, as a word."""
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    return any(word.search(tag.group(0)) for tag in _TAGS.finditer(source))


def _read_as(name: str, where: str) -> str | None:
    """The dotted prefix `name` is read with on its line (`ctx.` of `ctx.cartTotl`), when
    every place the line names it has the same one (else which failed is not known)."""
    prefixes: set[str] = set()
    for count, found in enumerate(re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", where)):
        before = where[max(0, found.start() - 200) : found.start()]
        prefix = re.search(r"(?:[A-Za-z_]\w*\.)+$", before)
        prefixes.add(prefix.group(0) if prefix else "")
        if len(prefixes) > 1 or count >= 50:
            return None
    return prefixes.pop() or None if prefixes else None


def _forbidden(exc: SecurityError) -> str:
    """What the sandbox refused, in plain words."""
    named = _UNSAFE_ATTRIBUTE.search(str(exc))
    if named:
        return f"this template uses something templates may not use ({named.group(1)})"
    return f"this template uses something templates may not use: {str(exc).rstrip('.')}"


def size_words(size: int) -> str:
    """2097152 -> "2 MB", 65536 -> "64 KB", 1048575 -> "1024 KB" (binary units, as the bounds
    are set; at most one decimal)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{round(size / scale, 1):g} {unit}"
    return f"{size} bytes"


class OutputTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the rendered part is larger than {size_words(max_bytes)}")
        self.max_bytes = max_bytes

    def reason(self, part: str) -> str:
        name = _PART_NAMES.get(part.rsplit(".", 1)[-1], part.rsplit(".", 1)[-1])
        return f"the rendered {name} is larger than {size_words(self.max_bytes)}"


def _bounded(template: Template, variables: dict[str, Any], max_bytes: int | None) -> str:
    """The rendered text, generated chunk by chunk so that output past the bound stops the
    render at once (Jinja yields each literal and each `{{ }}` as it goes)."""
    if max_bytes is None:
        return template.render(variables)
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        # A character is at most 4 bytes in UTF-8: encode only when the count may be over.
        size += len(chunk) if chunk.isascii() else len(chunk.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise OutputTooLarge(max_bytes)
        chunks.append(chunk)
    return "".join(chunks)


# The fields without a value, beside the variables: {"ctx": the declared fields a trigger left
# out, "profile": the profile's fields it has no value for}. The render gives each Jinja's plain
# `Undefined` (empty, `default` applies) instead of the strict one (an error).
UNSET_FIELDS = "__unset_fields__"


def _with_unset(variables: dict[str, Any]) -> dict[str, Any]:
    unset = variables.get(UNSET_FIELDS)
    if not unset:
        return variables
    out = {k: v for k, v in variables.items() if k != UNSET_FIELDS}
    for name, fields in unset.items():
        out[name] = {**out[name], **{field: Undefined(name=field) for field in fields}}
    return out


def template_variables(
    ctx: dict[str, Any],
    event: dict[str, Any],
    profile: dict[str, Any] | None = None,
    unsubscribe_url: str | None = None,
    declared: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Profile-based messages also see `profile` and `unsubscribe_url`.

    A `declared` field the trigger left out, and a profile field without a value (a profile
    with only an email has no `first_name`), render empty (`| default(...)` applies to them);
    any other missing name stays an error.
    """
    variables: dict[str, Any] = {"ctx": ctx, "event": event}
    # Names, not Undefined objects: variables travel as JSON to the render workers.
    unset: dict[str, list[str]] = {}
    missing = [name for name in declared if name not in ctx]
    if missing:
        unset["ctx"] = missing
    if profile is not None:
        variables["profile"] = profile
        empty = [name for name, value in profile.items() if value is None]
        if empty:
            unset["profile"] = empty
    if unset:
        variables[UNSET_FIELDS] = unset
    if unsubscribe_url is not None:
        variables["unsubscribe_url"] = unsubscribe_url
    return variables


def message_parts(content: dict[str, Any], variant: str | None = None) -> dict[str, str]:
    """The parts of a message version: a language variant's, or the default ones."""
    if variant is not None:
        return dict(content["variants"][variant])
    return {part: content[part] for part in (*EMAIL_PARTS, *SMS_PARTS) if part in content}


def variant_for(content: dict[str, Any], language: str | None) -> str | None:
    """The variant published for a language by RFC 4647 lookup, in any case: `zh-Hant-TW`
    gets `zh-hant-tw`, else `zh-hant`, else `zh`; None: the default parts."""
    variants = content.get("variants") or {}
    if not variants or not language:
        return None
    tag = language.lower()
    while tag:
        if tag in variants:
            return tag
        tag = tag.rpartition("-")[0]
    return None


def event_variables(
    pkey: str,
    event_id: str,
    email: str | None,
    event_date: datetime,
    scheduled: datetime | None,
    expiration: datetime | None,
    mobile_phone: str | None = None,
) -> dict[str, Any]:
    """What templates see as `event` (`{{ event.PKey }}`), at preview and at send alike."""
    return {
        "PKey": pkey,
        "type": event_id,
        "eventId": event_id,
        "email": email,
        "mobilePhone": mobile_phone,
        "eventDate": isoformat(event_date),
        "scheduled": isoformat(scheduled),
        "expiration": isoformat(expiration),
    }
