"""What a rendered message meets at send time, said before it is sent: render warnings.

The preview and the dry run answer them beside what they render, from the rules the legs
apply to the same rendered parts, so what the console says is what a send does:

- an email whose html and text both render blank (empty or only whitespace) is not sent: the
  email leg ends the event `routingFailed` (`email_body_blank`, which the leg calls);
- an email whose subject renders blank is sent, without a subject;
- an SMS whose text (`sms_text`: surrounding blank lines removed) is empty is not sent: the SMS
  leg ends the event `routingFailed`;
- an SMS longer than Twilio's 1,600 characters (`core/sms.py`: UTF-16 code units) is refused by
  Twilio (error 21617, a 400): a permanent error, so the event ends `deliveryFailed`, with no
  retry and no fallback provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from txmsg.core.kinds import Channel
from txmsg.core.sms import TWILIO_MAX_CHARACTERS, characters, sms_text
from txmsg.core.statuses import EventStatus

EMPTY_BODY = "empty_body"
EMPTY_SUBJECT = "empty_subject"
EMPTY_TEXT = "empty_text"
TOO_LONG = "too_long"


@dataclass(frozen=True, slots=True)
class RenderWarning:
    """A rendered part a send would refuse, or send other than the marketer may expect.

    `status` is the event status a send ends with because of it (nothing is sent), or None
    when the message is sent all the same.
    """

    code: str
    part: str
    detail: str
    status: EventStatus | None

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "part": self.part,
            "detail": self.detail,
            "status": None if self.status is None else str(self.status),
        }


def blank(part: str | None) -> bool:
    """Whether a rendered part is empty or only whitespace (`isspace` copies nothing, and
    stops at a body's first letter)."""
    return not part or part.isspace()


def email_body_blank(rendered: Mapping[str, str]) -> bool:
    """Whether an email has no body to send: its html and text both render blank."""
    return blank(rendered.get("html")) and blank(rendered.get("text"))


def email_warnings(rendered: Mapping[str, str]) -> list[RenderWarning]:
    out: list[RenderWarning] = []
    if blank(rendered.get("subject")):
        out.append(
            RenderWarning(
                EMPTY_SUBJECT,
                "subject",
                "The subject renders empty: the email would be sent without a subject.",
                None,
            )
        )
    if email_body_blank(rendered):
        out.append(
            RenderWarning(
                EMPTY_BODY,
                "html",
                "The HTML and the text both render empty: this email would not be sent "
                "(the event would end routingFailed).",
                EventStatus.ROUTING_FAILED,
            )
        )
    return out


def sms_warnings(text: str) -> list[RenderWarning]:
    """Warnings about the text an SMS sends (`sms_text` of its rendered body)."""
    if not text:
        return [
            RenderWarning(
                EMPTY_TEXT,
                "body",
                "The text renders empty: this SMS would not be sent "
                "(the event would end routingFailed).",
                EventStatus.ROUTING_FAILED,
            )
        ]
    count = characters(text)
    if count > TWILIO_MAX_CHARACTERS:
        return [
            RenderWarning(
                TOO_LONG,
                "body",
                f"The text is {count:,} characters, over Twilio's limit of "
                f"{TWILIO_MAX_CHARACTERS:,}: Twilio would refuse it (error 21617) and this "
                "SMS would not be sent (the event would end deliveryFailed).",
                EventStatus.DELIVERY_FAILED,
            )
        ]
    return []


def render_warnings(channel: Channel, rendered: Mapping[str, str]) -> list[RenderWarning]:
    """The warnings of a message's rendered parts, for its channel."""
    if channel == Channel.SMS:
        return sms_warnings(sms_text(rendered.get("body", "")))
    return email_warnings(rendered)
