"""Installation settings, read from the environment (TXMSG_*)."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from txmsg.core.rate_limit import KeyLimit, parse_limit_spec
from txmsg.core.render_limits import RenderLimits

# TXMSG_DATABASE_URL's schemes (`postgres://` as hosting platforms give it).
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")

DEFAULT_TRIGGER_LIMIT = KeyLimit(1000, 2000)  # TXMSG_TRIGGER_RATE_LIMIT="1000/s burst 2000"
DEFAULT_FAILURE_LIMIT = KeyLimit(10, 100)  # TXMSG_AUTH_FAILURE_RATE_LIMIT="10/s burst 100"


# Every TXMSG_* variable txmsg reads: the settings (`Settings.from_env`), then those the
# commands set for their own child processes. Any other is a typo or a leftover, told at start.
KNOWN_VARIABLES = frozenset(
    {
        "TXMSG_ADMIN_KEY",
        "TXMSG_AUTH_FAILURE_RATE_LIMIT",
        "TXMSG_BODY_TIMEOUT_SECONDS",
        "TXMSG_BOUNCE_LISTEN",
        "TXMSG_BOUNCE_MAX_BYTES",
        "TXMSG_CONFIG_CACHE_SECONDS",
        "TXMSG_DATABASE_TIMEOUT_SECONDS",
        "TXMSG_DATABASE_URL",
        "TXMSG_DATA_DIR",
        "TXMSG_DEFAULT_EXPIRATION_SECONDS",
        "TXMSG_EXPORT_RETENTION_DAYS",
        "TXMSG_INTERACTION_INACTIVITY_DAYS",
        "TXMSG_LEASE_SECONDS",
        "TXMSG_MAX_BODY_BYTES",
        "TXMSG_MAX_IN_FLIGHT",
        "TXMSG_POLL_INTERVAL",
        "TXMSG_PUBLIC_URL",
        "TXMSG_RENDER_MAX_BYTES",
        "TXMSG_RENDER_TIMEOUT_SECONDS",
        "TXMSG_RETRY_BASE_SECONDS",
        "TXMSG_RETRY_MAX_SECONDS",
        "TXMSG_SECRET_KEY",
        "TXMSG_SQLITE_SYNCHRONOUS",
        "TXMSG_SWEEP_INTERVAL",
        "TXMSG_TRACKING_MACHINE_SECONDS",
        "TXMSG_TRIGGER_RATE_LIMIT",
        "TXMSG_WEBHOOK_TIMEOUT_SECONDS",
    }
)
INTERNAL_VARIABLES = frozenset(
    {"TXMSG_EXPORT_READER_TARGET", "TXMSG_HANGUP_RESTARTING", "TXMSG_SERVE_PROCESS_OPTIONS"}
)


def unknown_variables(env: dict[str, str] | None = None) -> list[str]:
    """A line for each TXMSG_* variable txmsg does not read (a typo: its setting is silently
    the default), naming the closest known one. Warned of, never refused: a variable an old
    release read, left in a deployment's environment, must not stop it."""
    names = sorted(os.environ if env is None else env)
    lines = []
    for name in names:
        if not name.startswith("TXMSG_") or name.startswith("TXMSG_TEST_"):
            continue
        if name in KNOWN_VARIABLES or name in INTERNAL_VARIABLES:
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} is not a txmsg setting{hint}: it is ignored")
    return lines


# Beyond any sensible setting (31 years in seconds, a GB in bytes), and far within what a time
# span or a date may hold: now plus this many seconds is still a date.
_LARGEST = 1e9
# Periods in days: dates a century back stay dates.
_MAX_DAYS = 36_500


def _float(env: dict[str, str], name: str, default: float, largest: float = _LARGEST) -> float:
    """The number `name` holds, up to `largest`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or abs(value) > largest:
        raise ValueError(f"{name} must be a number up to {largest:g}, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("txmsg-data")
    database_url: str = ""
    admin_key: str | None = field(default=None, repr=False)
    # Fernet key(s) sealing stored secrets (store/sealing.py); None: the data directory's file.
    secret_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = 1024 * 1024
    # How long a request's body may take to arrive once its headers have (then 408).
    body_timeout_seconds: float = 30.0
    sqlite_synchronous: str = "FULL"
    # How long a statement waits for SQLite's write lock or a PostgreSQL connection: then 503.
    database_timeout_seconds: float = 10.0
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 1.0
    sweep_interval: float = 5.0
    max_in_flight: int = 64
    default_expiration: timedelta = timedelta(hours=24)
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    public_url: str | None = None
    config_cache_seconds: float = 1.0
    export_retention_days: float = 7.0
    # Requests per trigger key without a limit of its own, and wrong-key requests per client
    # address, across all processes (None: unlimited).
    trigger_rate_limit: KeyLimit | None = DEFAULT_TRIGGER_LIMIT
    auth_failure_rate_limit: KeyLimit | None = DEFAULT_FAILURE_LIMIT

    @property
    def export_retention(self) -> timedelta:
        return timedelta(days=self.export_retention_days)

    webhook_timeout_seconds: float = 10.0
    interaction_inactivity: timedelta = timedelta(days=90)
    bounce_listen: str | None = None  # "host:port" of the bounce listener; None: off
    bounce_max_bytes: int = 1024 * 1024  # DSNs and ARF reports are small

    @property
    def bounce_address(self) -> tuple[str, int] | None:
        """(host, port) the bounce listener binds, when it is on."""
        if not self.bounce_listen:
            return None
        host, _, port = self.bounce_listen.rpartition(":")
        return host.strip("[]"), int(port)

    # Opens and clicks this soon after the send are a machine's (core/machine.py); 0: no rule.
    tracking_machine_seconds: float = 2.0
    # Every render of a message (preview, proof, publish check, send) is bounded.
    render_timeout_seconds: float = 2.0
    render_max_bytes: int = 2 * 1024 * 1024

    @property
    def render_limits(self) -> RenderLimits:
        return RenderLimits(self.render_timeout_seconds, self.render_max_bytes)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'txmsg.db').resolve()}"

    def _more_problems(self, scheme: str) -> list[str]:
        """Retries, caches and the database URL's port (the rest: `__post_init__`)."""
        problems = []
        if self.retry_base_seconds <= 0 or self.retry_max_seconds < self.retry_base_seconds:
            problems.append(
                "TXMSG_RETRY_BASE_SECONDS must be greater than 0, and TXMSG_RETRY_MAX_SECONDS "
                "no less than it"
            )
        if self.config_cache_seconds < 0:
            problems.append("TXMSG_CONFIG_CACHE_SECONDS must not be negative")
        if scheme in ("postgresql", "postgres"):
            try:
                urlsplit(self.database_url).port  # noqa: B018 - raises on a port not a number
            except ValueError:
                problems.append("TXMSG_DATABASE_URL has a port that is not a number (1-65535)")
        return problems

    def __post_init__(self) -> None:
        problems = []
        scheme = self.database_url.partition("://")[0].partition("+")[0].lower()
        if self.database_url and scheme not in DATABASE_SCHEMES:
            problems.append(
                "TXMSG_DATABASE_URL must be a sqlite:/// or postgresql:// URL"
                f" (not {scheme or self.database_url[:20]!r})"
            )
        if self.max_in_flight < 1:
            problems.append("TXMSG_MAX_IN_FLIGHT must be at least 1")
        for name, value in (
            ("TXMSG_LEASE_SECONDS", self.lease.total_seconds()),
            ("TXMSG_POLL_INTERVAL", self.poll_interval),
            ("TXMSG_SWEEP_INTERVAL", self.sweep_interval),
            ("TXMSG_DEFAULT_EXPIRATION_SECONDS", self.default_expiration.total_seconds()),
            ("TXMSG_MAX_BODY_BYTES", self.max_body_bytes),
            ("TXMSG_BODY_TIMEOUT_SECONDS", self.body_timeout_seconds),
            ("TXMSG_DATABASE_TIMEOUT_SECONDS", self.database_timeout_seconds),
            ("TXMSG_EXPORT_RETENTION_DAYS", self.export_retention_days),
            ("TXMSG_WEBHOOK_TIMEOUT_SECONDS", self.webhook_timeout_seconds),
            ("TXMSG_INTERACTION_INACTIVITY_DAYS", self.interaction_inactivity.total_seconds()),
            ("TXMSG_RENDER_TIMEOUT_SECONDS", self.render_timeout_seconds),
            ("TXMSG_RENDER_MAX_BYTES", self.render_max_bytes),
        ):
            if value <= 0:
                problems.append(f"{name} must be greater than 0")
        problems += self._more_problems(scheme)
        if self.bounce_listen:
            host, colon, port = self.bounce_listen.rpartition(":")
            if not colon or not host or not port.isdigit() or int(port) > 65535:
                problems.append("TXMSG_BOUNCE_LISTEN must be host:port, e.g. 0.0.0.0:25")
        if self.bounce_max_bytes < 1024:
            problems.append("TXMSG_BOUNCE_MAX_BYTES must be at least 1024")
        if self.tracking_machine_seconds < 0:
            problems.append("TXMSG_TRACKING_MACHINE_SECONDS must not be negative")
        if self.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            problems.append("TXMSG_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            data_dir=Path(env.get("TXMSG_DATA_DIR") or "txmsg-data"),
            database_url=env.get("TXMSG_DATABASE_URL", ""),
            admin_key=env.get("TXMSG_ADMIN_KEY") or None,
            secret_key=env.get("TXMSG_SECRET_KEY") or None,
            max_body_bytes=int(_float(env, "TXMSG_MAX_BODY_BYTES", 1024 * 1024)),
            body_timeout_seconds=_float(env, "TXMSG_BODY_TIMEOUT_SECONDS", 30.0),
            sqlite_synchronous=env.get("TXMSG_SQLITE_SYNCHRONOUS", "FULL"),
            database_timeout_seconds=_float(env, "TXMSG_DATABASE_TIMEOUT_SECONDS", 10.0),
            lease=timedelta(seconds=_float(env, "TXMSG_LEASE_SECONDS", 60)),
            poll_interval=_float(env, "TXMSG_POLL_INTERVAL", 1.0),
            sweep_interval=_float(env, "TXMSG_SWEEP_INTERVAL", 5.0),
            max_in_flight=int(_float(env, "TXMSG_MAX_IN_FLIGHT", 64)),
            default_expiration=timedelta(
                seconds=_float(env, "TXMSG_DEFAULT_EXPIRATION_SECONDS", 86400)
            ),
            retry_base_seconds=_float(env, "TXMSG_RETRY_BASE_SECONDS", 1.0),
            retry_max_seconds=_float(env, "TXMSG_RETRY_MAX_SECONDS", 300.0),
            public_url=env.get("TXMSG_PUBLIC_URL") or None,
            config_cache_seconds=_float(env, "TXMSG_CONFIG_CACHE_SECONDS", 1.0),
            trigger_rate_limit=parse_limit_spec(
                env.get("TXMSG_TRIGGER_RATE_LIMIT", "1000/s burst 2000"), "TXMSG_TRIGGER_RATE_LIMIT"
            ),
            auth_failure_rate_limit=parse_limit_spec(
                env.get("TXMSG_AUTH_FAILURE_RATE_LIMIT", "10/s burst 100"),
                "TXMSG_AUTH_FAILURE_RATE_LIMIT",
            ),
            export_retention_days=_float(env, "TXMSG_EXPORT_RETENTION_DAYS", 7.0, _MAX_DAYS),
            webhook_timeout_seconds=_float(env, "TXMSG_WEBHOOK_TIMEOUT_SECONDS", 10.0),
            interaction_inactivity=timedelta(
                days=_float(env, "TXMSG_INTERACTION_INACTIVITY_DAYS", 90, _MAX_DAYS)
            ),
            bounce_listen=env.get("TXMSG_BOUNCE_LISTEN") or None,
            bounce_max_bytes=int(_float(env, "TXMSG_BOUNCE_MAX_BYTES", 1024 * 1024)),
            tracking_machine_seconds=_float(env, "TXMSG_TRACKING_MACHINE_SECONDS", 2.0),
            render_timeout_seconds=_float(env, "TXMSG_RENDER_TIMEOUT_SECONDS", 2.0),
            render_max_bytes=int(_float(env, "TXMSG_RENDER_MAX_BYTES", 2 * 1024 * 1024)),
        )
