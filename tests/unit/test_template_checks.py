"""Static checks of templates (Jinja2's syntax tree) and optional fields left out."""

from __future__ import annotations

import tracemalloc

import pytest

from txmsg.core.template_checks import check_part, known_names
from txmsg.core.templates import CompiledMessage, TemplateProblems, template_variables

KNOWN = known_names(["firstName", "lastProduct"], profile_based=False)


def render(source: str, ctx: dict[str, object], declared: tuple[str, ...]) -> str:
    variables = template_variables(ctx, {}, declared=declared)
    return CompiledMessage({"text": source}).render(variables)["text"]


def test_a_declared_field_left_out_renders_empty_and_default_applies() -> None:
    declared = ("firstName", "lastProduct")
    assert render("[{{ ctx.lastProduct }}]", {"firstName": "Ada"}, declared) == "[]"
    assert (
        render("{{ ctx.lastProduct | default('nothing') }}", {"firstName": "A"}, declared)
        == "nothing"
    )
    assert render("{% if ctx.lastProduct %}x{% else %}y{% endif %}", {}, declared) == "y"
    assert render("{{ ctx.lastProduct }}", {"lastProduct": "Tea"}, declared) == "Tea"
    html = CompiledMessage({"html": "<b>{{ ctx.lastProduct }}</b>"}).render(
        template_variables({}, {}, declared=declared)
    )
    assert html["html"] == "<b></b>"


def test_an_undeclared_field_left_out_is_still_an_error() -> None:
    with pytest.raises(TemplateProblems) as caught:
        render("{{ ctx.lastName }}", {"firstName": "Ada"}, ("firstName",))
    assert "lastName" in caught.value.problems[0].reason


def test_an_unknown_field_is_a_warning_at_its_line_and_column_with_a_suggestion() -> None:
    source = "Hello {{ ctx.firstName }}\n  you left {{ ctx.lastProdct }} behind"
    [warning] = check_part("html", source, KNOWN)
    assert (warning.part, warning.line, warning.column) == ("html", 2, 15)
    assert warning.name == "ctx.lastProdct"
    assert warning.suggestion == "ctx.lastProduct"
    assert "did you mean `ctx.lastProduct`?" in warning.detail


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("{{ ctx['lastProduct'] }} {{ ctx['nope'] }}", ["ctx.nope"]),
        ("{{ event.PKey }} {{ event.pkey }}", ["event.pkey"]),
        ("{{ profile.first_name }}", ["profile"]),  # not a profile-based event
        ("{{ unsubscribe_url }}", ["unsubscribe_url"]),
        ("{% set x = 1 %}{{ x }}{% for i in range(2) %}{{ i }}{% endfor %}", []),
        ("{{ ctx.firstName.upper() }} {{ ctx.lastProduct | default('') }}", []),
        ("{{ cxt.firstName }}", ["cxt"]),
        ("{{ ctx.a }}{{ ctx.a }}", ["ctx.a"]),  # once per name
        ("{% for k, v in ctx.items() %}{{ k }}{{ v }}{% endfor %}", []),
    ],
)
def test_names_are_checked_against_what_the_event_provides(source: str, names: list[str]) -> None:
    assert [w.name for w in check_part("text", source, KNOWN)] == names


def test_profile_based_events_know_the_profile_and_unsubscribe() -> None:
    known = known_names(["firstName"], profile_based=True)
    source = "{{ profile.first_name }} {{ profile.attributes.tier }} {{ unsubscribe_url }}"
    assert check_part("html", source, known) == []
    [warning] = check_part("html", "{{ profile.firstname }}", known)
    assert warning.suggestion == "profile.first_name"


def test_a_syntax_error_is_reported_with_its_line() -> None:
    [warning] = check_part("subject", "ok\n{{ ctx.firstName ", KNOWN)
    assert warning.line == 2 and warning.name is None
    assert warning.detail.startswith("line 2:")


def test_the_shipped_templates_have_no_warnings() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    known = known_names([], profile_based=True)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".txt", ".j2", ""):
            source = path.read_text("utf-8")
            names = [w.name for w in check_part(path.name, source, known)]
            assert all(n is None or n.startswith("ctx.") for n in names), (path, names)


@pytest.mark.parametrize(
    "huge",
    [
        "'x' * 10**9",
        "'x'|center(10**9)",
        "range(10**5)|join('x' * 10**5)",
        "'%999999999d'|format(1)",
    ],
)
def test_constant_expressions_are_not_evaluated_by_the_checks(huge: str) -> None:
    # The check runs in the API process. Jinja's code generator folds constants: these would
    # allocate a gigabyte there, for seconds on the event loop (the render workers evaluate
    # them, bounded).
    tracemalloc.start()
    try:
        warnings = check_part("html", "{{ ctx.firstNmae }}{{ " + huge + " }}", KNOWN)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [w.name for w in warnings] == ["ctx.firstNmae"]
    assert peak < 10 * 1024 * 1024, peak
