"""The schema. Alembic migrations (store/migrations) create it; a test checks they agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from txmsg.store.sealing import SealedJson, SealedText

metadata = sa.MetaData()

# 64-bit ids on PostgreSQL, SQLite's fast INTEGER PRIMARY KEY (rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on both engines (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # One step instead of two (this decorator, then SQLite's formatter): every event row
        # binds six date-times. The text is SQLAlchemy's own SQLite storage format. Most of a
        # row's date-times are the same instant (the trigger's `now`): recent ones are kept.
        recent: dict[datetime, str] = {}

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            text = recent.get(value)
            if text is None or value.tzinfo is not UTC:
                text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
                if value.tzinfo is UTC:
                    if len(recent) >= 1024:
                        recent.clear()
                    recent[value] = text
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    # {"per_second": N, "burst": M} or NULL (the installation default for trigger keys).
    sa.Column("rate_limit", Json, nullable=True),
    # After a rotation: the old secret's hash, valid until `previous_until`.
    sa.Column("previous_hash", sa.String(64), nullable=True),
    sa.Column("previous_until", UTCDateTime(), nullable=True),
    sa.Index("ix_api_keys_previous_hash", "previous_hash", unique=True),
)

channel_configs = sa.Table(
    "channel_configs",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    # Non-secret provider settings (from, reply-to, host, port, ...) as JSON.
    sa.Column("settings", Json, nullable=False),
    # Write-only values (passwords, tokens): never returned by the API, never logged, sealed
    # at rest (store/sealing.py).
    sa.Column("secrets", SealedJson(), nullable=False),
    sa.Column("message_export", sa.Boolean(), nullable=False, default=False),
    sa.Column("revision", sa.Integer(), nullable=False, default=1),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

event_configs = sa.Table(
    "event_configs",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column(
        "channel_config",
        sa.String(64),
        sa.ForeignKey("channel_configs.name", name="fk_event_configs_channel_config"),
        nullable=False,
    ),
    sa.Column("target", sa.String(16), nullable=False),
    # Profile-based events: {"from": trigger field, "to": profile field} (None: event-based).
    sa.Column("reconciliation", Json, nullable=True),
    sa.Column("fields", Json, nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # Its lane (core.kinds.Priority): its events are queued with that lane's rank.
    sa.Column("priority", sa.String(16), nullable=False, server_default="transactional"),
    sa.Column("revision", sa.Integer(), nullable=False, default=1),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=True),
)

# The transactional message of an event: one editable draft, one published version.
messages = sa.Table(
    "messages",
    metadata,
    sa.Column(
        "event_id",
        sa.String(64),
        sa.ForeignKey("event_configs.event_id", name="fk_messages_event_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("draft", Json, nullable=False),
    sa.Column("sample_ctx", Json, nullable=True),
    sa.Column("published_version", sa.Integer(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Immutable published versions; events record the version they were sent with.
message_versions = sa.Table(
    "message_versions",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("content", Json, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


def _where(*statuses: str) -> dict[str, Any]:
    clause = sa.text(
        f"status = '{statuses[0]}'"
        if len(statuses) == 1
        else "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"
    )
    return {"sqlite_where": clause, "postgresql_where": clause}


# Partial indexes over the few rows still in flight: a trigger leased straight to the
# dispatcher enters only the lease index, and leaves it when its outcome is recorded, so the
# hot path updates two B-trees per event instead of five, and the millions of finished events
# cost the queue nothing.
EVENT_INDEXES = (
    sa.Index("ix_events_claim", "priority", "due_at", "id", **_where("pending")),
    sa.Index("ix_events_lease", "lease_until", **_where("processing")),
    sa.Index("ix_events_waiting", "event_id", **_where("pending", "paused")),
    sa.Index("ix_events_expiry", "expires_at", **_where("pending", "paused")),
)

# The durable queue and the status of every trigger call.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("pkey", sa.String(40), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("priority", sa.SmallInteger(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("ctx", Json, nullable=False),
    sa.Column("event_date", UTCDateTime(), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("message_version", sa.Integer(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("mobile_phone", sa.String(16), nullable=True),  # E.164, for SMS events
    # The provider's message id (Twilio SID), so delivery receipts find their event.
    sa.Column("provider_message_id", sa.String(64), nullable=True),
    # The provider that sent the message, when its channel configuration has fallbacks.
    sa.Column("provider", sa.String(262), nullable=True),
    # The profile a profile-based event was reconciled with (set when it is dispatched).
    sa.Column("profile_id", sa.String(128), nullable=True),
    # When an attempt that ended unsent first went out to a provider (a 4xx then a retry, a
    # refusal): with `sent_at`, says a provider saw the message, so feedback may be about it.
    sa.Column("attempted_at", UTCDateTime(), nullable=True),
    sa.Index("ix_events_pkey", "pkey", unique=True),
    *EVENT_INDEXES,
    # Partial: triggers insert NULL here, so the hot path does not pay for this index.
    sa.Index(
        "ix_events_provider_message_id",
        "provider_message_id",
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    ),
    sa.Index("ix_events_profile", "profile_id"),
    # An event's triggers by date (api/latest_events.py): each page, filtered by date or not,
    # is one range of it. Written once per event (none of its columns ever change). Its WHERE
    # holds for every row (the column is NOT NULL) but keeps it to the queries that say so
    # (`BY_DATE`): SQLite's planner, without statistics, took it over the queue's partial
    # indexes for their `event_id = ?` otherwise.
    sa.Index(
        "ix_events_event_date",
        "event_id",
        "event_date",
        "id",
        sqlite_where=sa.text("event_date IS NOT NULL"),
        postgresql_where=sa.text("event_date IS NOT NULL"),
    ),
    # Partial: the few paused events, which every sweep looks for (store/queue/housekeeping.py)
    # without a walk of the waiting events of every live event type.
    sa.Index("ix_events_paused", "event_id", **_where("paused")),
    # Partial: the few events scheduled for later, whose profiles are found ahead
    # (store/targeting.py); a sweep reads them without a walk of the whole queue.
    sa.Index(
        "ix_events_scheduled",
        "scheduled_at",
        sqlite_where=sa.text("scheduled_at IS NOT NULL"),
        postgresql_where=sa.text("scheduled_at IS NOT NULL"),
    ),
)


# The index `ix_events_event_date`'s WHERE, word for word, for the queries that read it.
BY_DATE = sa.text("event_date IS NOT NULL")


def status_in(*statuses: str) -> sa.ColumnElement[bool]:
    """`events.status` filter written with literals, not parameters.

    The queue's indexes are partial (above); a planner uses one only when the query's WHERE
    implies the index's literally: SQLite never looks through a parameter, PostgreSQL not in a
    generic plan of a prepared statement.
    """
    literals: list[sa.ColumnElement[str]] = [sa.literal_column(f"'{s}'") for s in statuses]
    if len(literals) == 1:
        return events.c.status == literals[0]
    return events.c.status.in_(literals)


def waiting(*statuses: str) -> sa.ColumnElement[bool]:
    """Events waiting to be sent (pending or paused), narrowed to `statuses`.

    Its first term is the waiting indexes' own WHERE, word for word: SQLite does not infer
    `status IN ('pending', 'paused')` from `status = 'paused'`.
    """
    clause = status_in("pending", "paused")
    if set(statuses) != {"pending", "paused"}:
        clause = sa.and_(clause, status_in(*statuses))
    return clause


idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)

# The delivery log: interaction events of each sent message (sent, delivered, opened, clicked,
# bounced, spam, unsubscribed, ...), appended by channels' receipts, tracking and feedback.
delivery_log = sa.Table(
    "delivery_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("pkey", sa.String(40), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    # Kind-specific facts: a provider's status and error code, a bounce class, a clicked URL.
    sa.Column("detail", Json, nullable=True),
    # What makes an entry one of a kind for its message, for the entries recorded once
    # (a receipt's MessageSid, a bounce's class, "first" for a person's first open or
    # click): concurrent duplicates meet the unique index and are dropped (NULLs never meet).
    sa.Column("once_key", sa.String(64), nullable=True),
    sa.Index("ix_delivery_log_pkey", "pkey"),
    sa.Index("ix_delivery_log_event_at", "event_id", "at"),
    sa.Index("ux_delivery_log_once", "pkey", "kind", "once_key", unique=True),
)

# Delivery-log entries of people: not flagged machine (the opens and clicks of scanners and
# prefetch, core/machine.py). The flag is JSON `detail.machine`, absent from other entries.
BY_PEOPLE = sa.not_(sa.func.coalesce(delivery_log.c.detail["machine"].as_boolean(), sa.false()))

# The message export dataset: one record per message sent through a channel configuration with
# message export on. Flat columns (the nested AJO shape is built on export) and times as UTC
# epoch microseconds, so export reads columns straight into Arrow arrays. `id` is the export
# flows' watermark: never reused, even once the retention purge emptied the table (SQLite's
# plain rowid would start again at the highest left + 1, below the watermarks).
message_export = sa.Table(
    "message_export",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ingestion_us", sa.BigInteger(), nullable=False),
    sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("publication_id", sa.String(80), nullable=True),
    sa.Column("is_test", sa.Boolean(), nullable=False),
    sa.Column("profile_id", sa.String(200), nullable=True),
    sa.Column("recipient_email", sa.String(320), nullable=True),
    sa.Column("recipient_name", sa.Text(), nullable=True),
    sa.Column("recipient_number", sa.String(32), nullable=True),
    sa.Column("sender_email", sa.String(320), nullable=True),
    sa.Column("sender_name", sa.Text(), nullable=True),
    sa.Column("sender_reply_to", sa.String(320), nullable=True),
    sa.Column("sender_numbers", sa.Text(), nullable=True),  # a JSON array
    sa.Column("subject", sa.Text(), nullable=True),
    sa.Column("html", sa.Text(), nullable=True),
    sa.Column("text", sa.Text(), nullable=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Index("ix_message_export_ingestion", "ingestion_us"),
    sa.Index("ix_message_export_message_id", "message_id"),
    sqlite_autoincrement=True,
)

# Export flows: destination, format, schedule, the watermark (last exported dataset id) and a
# lease-style lock (exactly one process runs a flow at a time, on both engines).
export_flows = sa.Table(
    "export_flows",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("destination", Json, nullable=False),
    # Write-only values (secret_access_key): never returned, never logged, sealed at rest.
    sa.Column("secrets", SealedJson(), nullable=False),
    sa.Column("schedule", sa.String(32), nullable=False),
    sa.Column("compression", sa.String(16), nullable=False),
    sa.Column("watermark", sa.BigInteger(), nullable=False, default=0),
    sa.Column("next_run_at", UTCDateTime(), nullable=False),
    sa.Column("lock_token", sa.String(32), nullable=True),
    sa.Column("lock_until", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# --- profile-based messages: profiles, typology, fatigue, unsubscribe, proofs -----------------

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("profile_id", sa.String(128), primary_key=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("mobile_phone", sa.String(32), nullable=True),
    sa.Column("first_name", sa.String(200), nullable=True),
    sa.Column("last_name", sa.String(200), nullable=True),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("email_opt_out", sa.Boolean(), nullable=False, default=False),
    sa.Column("sms_opt_out", sa.Boolean(), nullable=False, default=False),
    # Who set the opt-out (core.profiles: `person` or `admin`); NULL while not opted out.
    sa.Column("email_opt_out_by", sa.String(16), nullable=True),
    sa.Column("sms_opt_out_by", sa.String(16), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # The row's place in the import that created it: the rows of one import share their
    # `created_at`, and "created first" (store/profiles.py `lookup`) is the file's order.
    sa.Column("created_seq", sa.Integer(), nullable=False, server_default="0"),
    sa.Index("ix_profiles_mobile_phone", "mobile_phone"),
)
# Profiles are found by email whatever the case of its local part (core.suppression's rule):
# the index is of the lower-cased address.
sa.Index("ix_profiles_email_lower", sa.func.lower(profiles.c.email))

# Addresses (emails or phone numbers) never sent to by profile-based messages.
denylist = sa.Table(
    "denylist",
    metadata,
    sa.Column("channel", sa.String(8), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # admin | import | spam (a complaint): what the suppression list reports as the reason
    sa.Column("source", sa.String(16), nullable=False, server_default="admin"),
)

# Bounce state per address; quarantined (never sent to, by any message) once quarantined_at is set.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("channel", sa.String(8), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("soft_bounces", sa.Integer(), nullable=False, default=0),
    sa.Column("quarantined_at", UTCDateTime(), nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # Held because the recipient opted out at the provider (an SMS STOP), not for bounces: the
    # suppression list says so, and later messages are ignored as opted out.
    sa.Column("opted_out", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
)

fatigue_rules = sa.Table(
    "fatigue_rules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("max_messages", sa.Integer(), nullable=True),
    sa.Column("max_attribute", sa.String(64), nullable=True),
    sa.Column("period", sa.String(32), nullable=False),
    sa.Column("period_seconds", sa.Integer(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, default=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per run of a flow; a run that failed or crashed is retried under the same number
# (same id range, same file names), so a re-run rewrites its files instead of adding more.
export_runs = sa.Table(
    "export_runs",
    metadata,
    sa.Column(
        "flow",
        sa.String(64),
        sa.ForeignKey("export_flows.name", name="fk_export_runs_flow", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("run", sa.Integer(), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("from_id", sa.BigInteger(), nullable=False),
    sa.Column("to_id", sa.BigInteger(), nullable=False),
    sa.Column("records", sa.BigInteger(), nullable=False, default=0),
    sa.Column("files", Json, nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    # Random, drawn when the run begins and kept by its retries: in its file names, so a retry
    # overwrites only files this run wrote (never another flow's, nor a deleted flow's of the
    # same name). NULL for runs begun before migration 0024 (names without it).
    sa.Column("file_tag", sa.String(16), nullable=True),
)

# One row per profile-based message whose send was decided: what fatigue rules count.
fatigue_reservations = sa.Table(
    "fatigue_reservations",
    metadata,
    sa.Column("pkey", sa.String(40), primary_key=True),
    sa.Column("profile_id", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_fatigue_reservations_profile_at", "profile_id", "at"),
    sa.Index("ix_fatigue_reservations_at", "at"),
)

fatigue_exclusions = sa.Table(
    "fatigue_exclusions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC date, YYYY-MM-DD
    sa.Column("pkey", sa.String(40), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_fatigue_exclusions_rule_day", "rule", "day"),
    sa.Index("ux_fatigue_exclusions_pkey", "pkey", unique=True),  # one decision a message
)

# Server-side secrets generated on first use (e.g. the unsubscribe token key).
server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # Sealed: a copy of the database must not sign console sessions, unsubscribe links,
    # bounce addresses or tracking links.
    sa.Column("value", SealedText(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Console sessions signed out before their end: a copy of the cookie is refused until then.
console_sign_outs = sa.Table(
    "console_sign_outs",
    metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("until", UTCDateTime(), nullable=False),
)

# Sample data for proofs of an event's message.
test_profiles = sa.Table(
    "test_profiles",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("ctx", Json, nullable=False),
    sa.Column("profile", Json, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# --- reports, webhooks and the interaction-data lifecycle (migration 0006) -------------------

# Day aggregates, counted as statuses and interactions are recorded: they outlive the detailed
# rows (interaction-data expiry). message_version 0: no template version (failed early, ignored).
report_days = sa.Table(
    "report_days",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("message_version", sa.Integer(), primary_key=True),
    sa.Column("metric", sa.String(24), primary_key=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
)

event_config_tags = sa.Table(
    "event_config_tags",
    metadata,
    sa.Column(
        "event_id",
        sa.String(64),
        sa.ForeignKey(
            "event_configs.event_id", name="fk_event_config_tags_event_id", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Index("ix_event_config_tags_tag", "tag"),
)

# The status webhook of an event configuration; the secret is write-only.
event_webhooks = sa.Table(
    "event_webhooks",
    metadata,
    sa.Column(
        "event_id",
        sa.String(64),
        sa.ForeignKey(
            "event_configs.event_id", name="fk_event_webhooks_event_id", ondelete="CASCADE"
        ),
        primary_key=True,
    ),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", SealedText(), nullable=False),  # sealed at rest (store/sealing.py)
)

# Webhook deliveries still to make, written in the transaction of the change they announce.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("pkey", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("interaction", sa.String(24), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("detail", Json, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Index("ix_webhook_outbox_due_at", "due_at"),
    # Ids are the calls' `id`, by which receivers drop duplicates: never reused, even after
    # the outbox empties (SQLite's plain rowid would start again at the highest left + 1).
    sqlite_autoincrement=True,
)

# Parquet files holding expired delivery-log rows of an event (never deleted).
interaction_archives = sa.Table(
    "interaction_archives",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("rows", sa.Integer(), nullable=False),
    sa.Column("archived_at", UTCDateTime(), nullable=False),
    sa.Column("restored_at", UTCDateTime(), nullable=True),
    sa.Index("ix_interaction_archives_event_id", "event_id"),
)

# Rate-limit counters shared by every process (store/rate_windows.py): one row per scope (a
# channel configuration's per-second or per-day cap, an API key's bucket), holding its current
# window (epoch milliseconds) and the tokens taken in it; `granted` is the last take's answer.
rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("scope", sa.String(128), primary_key=True),
    sa.Column("window_start", sa.BigInteger(), nullable=False),
    sa.Column("cap", sa.BigInteger(), nullable=False),
    sa.Column("used", sa.BigInteger(), nullable=False),
    sa.Column("granted", sa.BigInteger(), nullable=False),
)

# SQLite's scheduler lease: the one process running scheduled jobs, until `expires` (the
# database's clock, Unix seconds). PostgreSQL holds an advisory lock instead.
scheduler_leases = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(80), nullable=False),
    sa.Column("expires", sa.Float(), nullable=False),
)
