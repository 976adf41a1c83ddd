"""Render warnings (core/render_checks.py) and the SMS length facts the preview shows."""

from __future__ import annotations

import pytest

from txmsg.core.kinds import Channel
from txmsg.core.render_checks import (
    EMPTY_BODY,
    EMPTY_SUBJECT,
    EMPTY_TEXT,
    TOO_LONG,
    render_warnings,
    sms_warnings,
)
from txmsg.core.sms import GSM7, TWILIO_MAX_CHARACTERS, UCS2, analyse
from txmsg.core.statuses import EventStatus

ROUTING_FAILED, DELIVERY_FAILED = EventStatus.ROUTING_FAILED, EventStatus.DELIVERY_FAILED


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units", "characters"),
    [
        ("x" * 160, GSM7, 1, 160, 160),
        ("x" * 161, GSM7, 2, 161, 161),
        ("x" * 153 * 2, GSM7, 2, 306, 306),
        ("x" * (153 * 2 + 1), GSM7, 3, 307, 307),
        # Extension characters take two septets each, but are one character to Twilio.
        ("{}[]~\\^|€", GSM7, 1, 18, 9),
        ("€" * 80, GSM7, 1, 160, 80),
        ("€" * 81, GSM7, 2, 162, 81),
        ("x" * 159 + "€", GSM7, 2, 161, 160),
        ("✓" * 70, UCS2, 1, 70, 70),
        ("✓" * 71, UCS2, 2, 71, 71),
        ("x" * 69 + "✓", UCS2, 1, 70, 70),  # one non-GSM character makes the whole text UCS-2
        ("x" * 70 + "✓", UCS2, 2, 71, 71),
        # A character outside the BMP is a surrogate pair: two UCS-2 units, two characters.
        ("😀" * 35, UCS2, 1, 70, 70),
        ("😀" * 35 + "x", UCS2, 2, 71, 71),
        ("x" * 69 + "😀", UCS2, 2, 71, 71),  # the pair does not fit the single segment
    ],
)
def test_sms_length_units_and_characters(
    text: str, encoding: str, segments: int, units: int, characters: int
) -> None:
    info = analyse(text)
    assert (info.encoding, info.segments, info.units, info.characters) == (
        encoding,
        segments,
        units,
        characters,
    )


@pytest.mark.parametrize(
    ("text", "too_long"),
    [
        ("x" * 1600, False),
        ("x" * 1601, True),
        ("€" * 1600, False),  # 3,200 septets, but 1,600 characters as Twilio counts
        ("😀" * 800, False),  # 1,600 UTF-16 code units
        ("😀" * 800 + "x", True),
        ("😀" * 801, True),
    ],
)
def test_an_sms_past_twilios_limit_is_said_to_fail_delivery(text: str, too_long: bool) -> None:
    assert TWILIO_MAX_CHARACTERS == 1600
    warnings = sms_warnings(text)
    if not too_long:
        assert warnings == []
        return
    [warning] = warnings
    assert (warning.code, warning.part, warning.status) == (TOO_LONG, "body", DELIVERY_FAILED)
    assert f"{analyse(text).characters:,} characters" in warning.detail
    assert "21617" in warning.detail and "deliveryFailed" in warning.detail
    assert warning.as_dict()["status"] == "deliveryFailed"


@pytest.mark.parametrize("body", ["", "   ", "\n\n", " \r\n\t "])
def test_an_sms_that_renders_empty_is_said_to_fail_routing(body: str) -> None:
    [warning] = render_warnings(Channel.SMS, {"body": body})
    assert (warning.code, warning.part, warning.status) == (EMPTY_TEXT, "body", ROUTING_FAILED)
    assert render_warnings(Channel.SMS, {"body": "\n hi \n"}) == []


@pytest.mark.parametrize(
    ("rendered", "codes"),
    [
        ({"subject": "Hi", "html": "<p>x</p>", "text": "x"}, []),
        ({"subject": "Hi", "html": "", "text": "x"}, []),
        ({"subject": "Hi", "html": "<p>x</p>", "text": ""}, []),
        ({"subject": "Hi", "html": "", "text": ""}, [EMPTY_BODY]),
        ({"subject": "Hi", "html": " \n", "text": "\t"}, [EMPTY_BODY]),
        ({"subject": "", "html": "<p>x</p>", "text": "x"}, [EMPTY_SUBJECT]),
        ({"subject": "  ", "html": "", "text": " "}, [EMPTY_SUBJECT, EMPTY_BODY]),
    ],
)
def test_email_warnings(rendered: dict[str, str], codes: list[str]) -> None:
    warnings = render_warnings(Channel.EMAIL, rendered)
    assert [w.code for w in warnings] == codes
    for w in warnings:
        # An empty body is not sent (as the email leg decides); an empty subject is.
        assert w.status == (ROUTING_FAILED if w.code == EMPTY_BODY else None)
        assert w.as_dict() == {
            "code": w.code,
            "part": w.part,
            "detail": w.detail,
            "status": None if w.status is None else "routingFailed",
        }
