"""The settings of an email channel configuration: sender, SMTP connection, bounces, tracking.

`parse_email_settings` checks an API body and gives the stored form (settings and secrets
kept apart); `email_settings` reads that stored form back as typed values, once, when a route
is loaded. The SMTP password is a write-only secret: never shown, never in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from txmsg.core.addresses import normalize_email
from txmsg.core.breaker import BreakerSettings, breaker_settings, parse_breaker
from txmsg.core.dkim import SECRET_NAME as DKIM_SECRET
from txmsg.core.dkim import DkimSettings, aligned, dkim_settings, parse_dkim
from txmsg.core.errors import invalid, refused
from txmsg.core.kinds import Channel
from txmsg.core.tracking import OFF, TrackingSettings, parse_tracking, tracking_of
from txmsg.core.validation import (
    get_choice,
    get_int,
    get_number,
    get_str,
    reject_unknown,
    require_object,
)
from txmsg.core.verp import is_hostname

TLS_MODES = ("none", "starttls", "tls")
EMAIL_FIELDS = {
    "name",
    "channel",
    "from_email",
    "from_name",
    "reply_to",
    "smtp",
    "message_export",
    "bounce_domain",
    "tracking",
    "dkim",
    "fallbacks",
    "breaker",
}
MAX_FALLBACKS = 4
FALLBACK_SECRET = "fallback_passwords"  # {"0": password, ...} in the secrets
SMTP_FIELDS = {"host", "port", "tls", "username", "password", "timeout", "pool_size"}


@dataclass(frozen=True, slots=True)
class SMTPSettings:
    """How to reach the SMTP server: what one connection pool needs."""

    host: str
    port: int = 25
    tls: str = "none"  # "none" | "starttls" | "tls" (implicit TLS)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    timeout: float = 30.0
    pool_size: int = 8
    validate_certs: bool = True

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {TLS_MODES}, not {self.tls!r}")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """An email channel configuration, as the email leg sends with it."""

    channel: ClassVar[Channel] = Channel.EMAIL
    from_email: str
    smtp: SMTPSettings
    from_name: str | None = None
    reply_to: str | None = None
    bounce_domain: str | None = None  # set: envelope senders are per-message VERP addresses
    tracking: TrackingSettings = OFF
    dkim: DkimSettings | None = None  # set: every message is DKIM-signed
    fallbacks: tuple[SMTPSettings, ...] = ()  # tried in order when the ones before fail
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


def email_settings(settings: dict[str, Any], secrets: dict[str, Any]) -> EmailSettings:
    """The typed settings of a stored email channel configuration (written by the parser)."""
    passwords = secrets.get(FALLBACK_SECRET, {})
    return EmailSettings(
        from_email=settings["from_email"],
        smtp=_smtp_settings(settings["smtp"], secrets.get("password")),
        fallbacks=tuple(
            _smtp_settings(f, passwords.get(str(i)))
            for i, f in enumerate(settings.get("fallbacks", ()))
        ),
        breaker=breaker_settings(settings),
        from_name=settings.get("from_name"),
        reply_to=settings.get("reply_to"),
        bounce_domain=settings.get("bounce_domain"),
        tracking=tracking_of(settings),
        dkim=dkim_settings(settings, secrets),
    )


def _smtp_settings(smtp: dict[str, Any], password: str | None) -> SMTPSettings:
    return SMTPSettings(
        host=smtp["host"],
        port=smtp["port"],
        tls=smtp["tls"],
        username=smtp.get("username"),
        password=password,
        timeout=smtp.get("timeout", 30.0),
        pool_size=smtp.get("pool_size", 8),
    )


def parse_email_settings(
    body: dict[str, Any],
    current: dict[str, Any],
    *,
    required: bool,
    current_secrets: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored settings and the secrets given in `body` (the SMTP password, the DKIM key);
    on update, a secret left out of `body` is kept by the caller."""
    settings = dict(current)
    if required or "from_email" in body:
        settings["from_email"] = normalize_email(body.get("from_email"), "from_email")
    for key in ("from_name", "reply_to"):
        if key in body:
            settings[key] = get_str(body, key, max_length=320)
    if settings.get("reply_to"):
        settings["reply_to"] = normalize_email(settings["reply_to"], "reply_to")
    if "bounce_domain" in body:
        domain = _parse_bounce_domain(body["bounce_domain"])
        if domain is None:
            settings.pop("bounce_domain", None)
        else:
            settings["bounce_domain"] = domain
    if "tracking" in body:
        settings["tracking"] = parse_tracking(body["tracking"], tracking_of(current)).as_dict()
    secrets: dict[str, Any] = {}
    if required or "smtp" in body:
        if "smtp" not in body:
            raise invalid("smtp", "is required")
        settings["smtp"], secrets = _parse_smtp(body["smtp"], current.get("smtp"))
        _password_follows(current.get("smtp"), settings["smtp"], secrets, current_secrets)
    _apply_dkim(body, current, current_secrets or {}, settings, secrets)
    if "fallbacks" in body:
        settings["fallbacks"], secrets[FALLBACK_SECRET] = _parse_fallbacks(
            body["fallbacks"], current.get("fallbacks") or [], current_secrets or {}
        )
    if "breaker" in body:
        settings["breaker"] = parse_breaker(body["breaker"])
    return settings, secrets


def _apply_dkim(
    body: dict[str, Any],
    current: dict[str, Any],
    current_secrets: dict[str, Any],
    settings: dict[str, Any],
    secrets: dict[str, Any],
) -> None:
    """Parse `dkim` into `settings` and its key into `secrets`; with a new from_email and the
    stored `dkim`, check that they still align."""
    if "dkim" in body:
        dkim, key = parse_dkim(
            body["dkim"],
            current.get("dkim"),
            current_secrets.get(DKIM_SECRET),
            settings["from_email"],
        )
        if dkim is None:
            settings.pop("dkim", None)
        else:
            settings["dkim"], secrets[DKIM_SECRET] = dkim, key
    elif "from_email" in body and current.get("dkim"):
        domain = current["dkim"]["domain"]
        if not aligned(settings["from_email"], domain):
            # A conflict with what is stored, not with the spec: a 422, as for dkim.domain.
            raise refused("from_email", f"must align with dkim.domain ({domain})")


def _parse_smtp(
    raw: object, current: dict[str, Any] | None, name: str = "smtp"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings and secrets of an `smtp` object (`name` in errors: smtp, fallbacks[0]); on
    update, given keys replace current ones."""
    body = require_object(raw, name)
    p = name + "."
    reject_unknown(body, SMTP_FIELDS, p)
    merged = dict(current or {})
    if "tls" in body and "port" not in body:
        merged.pop("port", None)  # the default port follows the TLS mode
    for key in body:
        if key != "password":
            merged[key] = body[key]
    host = get_str(merged, "host", prefix=p, required=True, max_length=255)
    tls = get_choice(merged, "tls", TLS_MODES, prefix=p, default="none")
    default_port = {"none": 25, "starttls": 587, "tls": 465}[tls or "none"]
    settings = {
        "host": host,
        "port": get_int(merged, "port", prefix=p, default=default_port, minimum=1, maximum=65535),
        "tls": tls,
        "username": get_str(merged, "username", prefix=p, max_length=255),
        "timeout": get_number(merged, "timeout", prefix=p, default=30.0, minimum=0.1, maximum=600),
        "pool_size": get_int(merged, "pool_size", prefix=p, default=8, minimum=1, maximum=64),
    }
    secrets: dict[str, Any] = {}
    if "password" in body:
        password = body["password"]
        if password is not None and not isinstance(password, str):
            raise invalid(p + "password", "must be a string")
        if password and "\x00" in password:
            raise invalid(p + "password", "must not contain NUL characters (U+0000)")
        if password:
            secrets["password"] = password
    return settings, secrets


def _parse_fallbacks(
    raw: object, current: list[dict[str, Any]], current_secrets: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Further relays, each shaped like `smtp`, tried in order when the ones before fail. The
    list replaces the stored one; an entry without `password` keeps the stored password of
    the entry at its position."""
    if raw is None:
        raw = []
    if not isinstance(raw, list) or len(raw) > MAX_FALLBACKS:
        raise invalid("fallbacks", f"must be an array of at most {MAX_FALLBACKS} SMTP relays")
    stored = current_secrets.get(FALLBACK_SECRET, {})
    # The stored passwords by the relay account they were given for (host, port, username, TLS).
    kept = {_account(relay): stored[str(i)] for i, relay in enumerate(current) if str(i) in stored}
    settings: list[dict[str, Any]] = []
    passwords: dict[str, str] = {}
    for i, entry in enumerate(raw):
        name = f"fallbacks[{i}]"
        parsed, secret = _parse_smtp(entry, None, name)
        settings.append(parsed)
        if isinstance(entry, dict) and "password" in entry:
            if "password" in secret:
                passwords[str(i)] = secret["password"]
        elif _account(parsed) in kept:
            passwords[str(i)] = kept[_account(parsed)]
        elif parsed["username"]:
            raise refused(
                name + ".password",
                "is required: no password is stored for this relay and user (a stored "
                "password stays with the host, port and username it was given for)",
            )
    return settings, passwords


def _account(relay: dict[str, Any]) -> tuple[str, int, str | None, bool]:
    """The relay account a password belongs to, and whether it goes encrypted (a password
    given for a TLS connection is not sent in clear once TLS is turned off)."""
    encrypted = relay.get("tls", "none") != "none"
    return (str(relay["host"]).lower(), int(relay["port"]), relay.get("username"), encrypted)


def _password_follows(
    current: dict[str, Any] | None,
    parsed: dict[str, Any],
    given: dict[str, Any],
    stored: dict[str, Any] | None,
) -> None:
    """A stored password is kept only for the relay account it was given for: a new host,
    port or username needs its own (or none, without a username)."""
    if "password" in given or not (stored or {}).get("password") or current is None:
        return
    if not parsed["username"] or _account(current) == _account(parsed):
        return
    raise refused(
        "smtp.password",
        "is required: the host, port, username or TLS changed, and the stored password "
        "stays with the relay and the connection it was given for",
    )


def _parse_bounce_domain(value: object) -> str | None:
    """The domain of the per-message VERP envelope senders (null: the from address is the
    envelope sender)."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_hostname(value.strip().lower().rstrip(".")):
        raise invalid(
            "bounce_domain",
            "must be a host name such as bounces.example.com (ASCII; IDNs in punycode)",
        )
    return value.strip().lower().rstrip(".")
