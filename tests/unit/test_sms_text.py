"""SMS text rules (encoding, segments) and mobile number normalisation."""

from __future__ import annotations

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.phones import normalize_phone
from txmsg.core.sms import GSM7, UCS2, analyse


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("", GSM7, 0, 0),
        ("x" * 160, GSM7, 1, 160),
        ("x" * 161, GSM7, 2, 161),
        ("x" * 306, GSM7, 2, 306),
        ("x" * 307, GSM7, 3, 307),
        ("€" * 80, GSM7, 1, 160),  # extension characters take two septets
        ("€" * 81, GSM7, 2, 162),
        # 152 septets then an escape pair: the pair is not split, it opens segment two.
        ("x" * 152 + "{" + "x" * 10, GSM7, 2, 164),
        ("Grüße à Zoé, £5 @ 12:00", GSM7, 1, 23),
        ("Zoë", UCS2, 1, 3),  # ë is not in the GSM alphabet
        ("x" * 70 + "✓", UCS2, 2, 71),
        ("✓" * 70, UCS2, 1, 70),
        ("✓" * 134, UCS2, 2, 134),
        ("✓" * 135, UCS2, 3, 135),
        ("😀" * 35, UCS2, 1, 70),  # outside the BMP: a surrogate pair, two UTF-16 units
        ("x" * 66 + "😀" + "x" * 66, UCS2, 3, 134),  # the pair is not split across segments
    ],
)
def test_encoding_and_segments(text: str, encoding: str, segments: int, units: int) -> None:
    info = analyse(text)
    assert (info.encoding, info.segments, info.units) == (encoding, segments, units)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+14155552671", "+14155552671"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw, "mobilePhone") == e164


@pytest.mark.parametrize(
    "raw",
    [
        "+15558675310",
        "0612345678",
        "415 555 2671",
        "",
        "  ",
        "+1",
        "phone",
        123,
        None,
        "+14155552671\x00",  # libphonenumber drops a NUL: the number must not be taken so
        "+1415\x005552671",
    ],
)
def test_invalid_numbers_name_the_field(raw: object) -> None:
    with pytest.raises(DomainError) as caught:
        normalize_phone(raw, "mobilePhone")
    assert caught.value.status == 400
    assert [e.field for e in caught.value.errors] == ["mobilePhone"]


def test_shipped_sms_templates_render_their_samples_in_one_segment() -> None:
    from txmsg.core.sms import sms_text
    from txmsg.core.templates import CompiledMessage, event_variables, template_variables
    from txmsg.core.timeutil import utcnow
    from txmsg.store.template_library import library

    sms = {name: t for name, t in library().items() if t["channel"] == "sms"}
    assert {"sms_default", "sms_verification_code"} <= set(sms)
    for name, shipped in sms.items():
        event = event_variables("PK", "EVTx", None, utcnow(), None, None, "+14155552671")
        rendered = CompiledMessage({"body": shipped["body"]}).render(
            template_variables(shipped["sample_ctx"], event)
        )
        info = analyse(sms_text(rendered["body"]))
        assert (info.encoding, info.segments) == (GSM7, 1), name
