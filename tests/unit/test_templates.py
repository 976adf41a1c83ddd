"""Template rendering rules that hold without a server: data lookups and the sandbox."""

from __future__ import annotations

import orjson
import pytest

from txmsg.core import templates
from txmsg.core.templates import (
    CompiledMessage,
    TemplateProblems,
    template_variables,
    variant_for,
)


def render(source: str, ctx: dict[str, object]) -> str:
    return CompiledMessage({"text": source}).render({"ctx": ctx, "event": {}})["text"]


def test_data_fields_are_read_before_dict_methods() -> None:
    ctx = {"items": 3, "keys": "k", "values": [1, 2], "firstName": "Ada"}
    assert render(
        "{{ ctx.items }} {{ ctx.keys }} {{ ctx.values|sum }} {{ ctx.firstName }}", ctx
    ) == ("3 k 3 Ada")
    assert (
        render("{{ ctx.order.id }} {{ ctx['firstName'] }}", {"order": {"id": 7}, "firstName": "A"})
        == "7 A"
    )


def test_missing_fields_are_still_errors() -> None:
    with pytest.raises(TemplateProblems) as caught:
        render("{{ ctx.lastName }}", {"firstName": "Ada"})
    assert "lastName" in caught.value.problems[0].reason


@pytest.mark.parametrize(
    "source",
    [
        "{{ ctx.__class__.__mro__ }}",
        "{{ ctx.items.__globals__ }}",
        "{{ ctx.firstName.__class__.__subclasses__() }}",
        "{{ ctx.update({'x': 1}) }}",
    ],
)
def test_the_sandbox_still_guards_attributes(source: str) -> None:
    with pytest.raises(TemplateProblems):
        render(source, {"firstName": "Ada"})


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        ("{{ ctx.firstName|truncate(2) }}", 1, "expected length >= 3, got 2"),
        ("\n{{ ctx.firstName|truncate(9, leeway=-1) }}", 2, "expected leeway"),
        ("\n\n{{ cycler().next() }}", 3, "at least one item has to be provided"),
        ("Hi {{ '%c'|format(55296) }}", None, "renders U+D800, a lone surrogate"),
    ],
)
def test_what_a_template_raises_or_makes_is_its_parts_problem(
    source: str, line: int | None, reason: str
) -> None:
    with pytest.raises(TemplateProblems) as caught:
        CompiledMessage({"subject": "Hi", "text": source}).render(
            {"ctx": {"firstName": "Ada"}, "event": {}}, max_bytes=1000
        )
    [problem] = caught.value.problems
    assert (problem.part, problem.line) == ("text", line)
    assert problem.reason.startswith(reason)


def test_an_error_outside_the_templates_code_is_not_its_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(variables: dict[str, object]) -> dict[str, object]:
        raise RuntimeError("a bug of the engine's")

    monkeypatch.setattr(templates, "_with_unset", broken)
    with pytest.raises(RuntimeError):
        render("{{ ctx.firstName }}", {"firstName": "Ada"})


def test_profile_fields_without_a_value_render_empty_as_left_out_ctx_fields_do() -> None:
    variables = template_variables(
        {"firstName": "Ada"},
        {},
        {"email": "a@example.org", "first_name": None, "language": None},
        declared=("firstName", "order"),
    )
    source = "[{{ profile.first_name }}] {{ profile.first_name|default('there') }} {{ ctx.order }}"
    message = CompiledMessage({"text": source})
    assert message.render(variables)["text"] == "[] there "
    assert (
        message.render(orjson.loads(orjson.dumps(variables)))["text"] == "[] there "
    )  # a worker's


@pytest.mark.parametrize(
    ("language", "variant"),
    [
        ("zh-Hant-TW", "zh-hant"),
        ("zh-TW", "zh"),
        ("sr-Latn-RS", "sr-latn"),
        ("fr-CA", "fr-ca"),
        ("fr-BE", "fr"),
        ("FR", "fr"),
        ("en", None),
        (None, None),
    ],
)
def test_a_language_gets_its_variant_by_rfc_4647_lookup(
    language: str | None, variant: str | None
) -> None:
    content = {"variants": {"zh-hant": {}, "zh": {}, "sr-latn": {}, "fr-ca": {}, "fr": {}}}
    assert variant_for(content, language) == variant


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "<p>x</p>\n<p>{{ (ctx.cartTotl * 1.2) | round(2) }}</p>",
            "ctx.cartTotl is not in the data",
        ),
        ("{{ ctx.a.b }}", "ctx.a.b is not in the data"),
        ("{{ ctx.firstName.nope }}", "ctx.firstName is a text, which has no nope"),
        ("{{ {}[ctx.firstName] }}", "'Ada' is not in the data"),
        ("{{ nobody }}", "nobody is not defined"),
        # The line reads `b` two ways: which one failed is not known, so neither is named.
        ("{{ ctx.firstName.b }} {{ ctx.a.b }}", "it is a text, which has no b"),
        ("{% if ctx.a.total %}{% endif %}{{ ctx.total }}", "total is not in the data"),
        # A key that is a value of the data's, even one the template's text has ('Ad'):
        # quoted, as it is not a name the template writes.
        ("Ad {{ {}[ctx.firstName[:2]] }}", "'Ad' is not in the data"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ ''.__class__ }}", "this template uses something templates may not use (__class__)"),
        ("{{ 'x' * 2000 }}", "the rendered HTML is larger than 1 KB"),
    ],
)
def test_render_errors_read_as_plain_sentences(source: str, reason: str) -> None:
    with pytest.raises(TemplateProblems) as caught:
        CompiledMessage({"html": source}).render(
            {"ctx": {"firstName": "Ada", "a": {}}, "event": {}}, max_bytes=1024
        )
    [problem] = caught.value.problems
    assert problem.reason == reason
