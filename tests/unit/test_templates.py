"""Template rendering rules that hold without a server: data lookups and the sandbox."""

from __future__ import annotations

import pytest

from txmsg.core.templates import CompiledMessage, TemplateProblems


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
