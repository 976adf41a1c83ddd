"""The fixed Arrow schema of exported records (AJO's message export shape) and the batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from txmsg.core.export_record import EVENT_TYPE, decode_numbers

_TS = pa.timestamp("us", tz="UTC")
RECIPIENT = pa.struct([("email", pa.string()), ("name", pa.string()), ("number", pa.string())])
SENDER = pa.struct(
    [
        ("email", pa.string()),
        ("name", pa.string()),
        ("replyToEmail", pa.string()),
        ("numbers", pa.list_(pa.string())),
    ]
)
CONTENT = pa.struct(
    [
        ("subject", pa.string()),
        ("html", pa.string()),
        ("text", pa.string()),
        ("message", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("timestamp", _TS),
        ("ingestion_time", _TS),
        ("eventType", pa.string()),
        ("channel", pa.string()),
        ("messageID", pa.string()),
        ("eventId", pa.string()),
        ("messagePublicationID", pa.string()),
        ("isTestExecution", pa.bool_()),
        ("recipient", RECIPIENT),
        ("sender", SENDER),
        ("content", CONTENT),
        ("profileID", pa.string()),
    ]
)


def _strings(values: Sequence[Any]) -> pa.Array:
    return pa.array(values, pa.string())


def _numbers(stored: Sequence[str | None]) -> pa.Array:
    if not any(stored):  # email only: no decoding at all
        return pa.nulls(len(stored), pa.list_(pa.string()))
    return pa.array([decode_numbers(s) for s in stored], pa.list_(pa.string()))


def _struct(struct_type: pa.StructType, arrays: list[pa.Array]) -> pa.StructArray:
    return pa.StructArray.from_arrays(arrays, fields=list(struct_type))


def record_batch(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """Dataset rows (their column names in `columns`) as one batch of SCHEMA, column-wise."""
    c = dict(zip(columns, zip(*rows, strict=True), strict=True))
    n = len(rows)
    arrays = [
        pa.array(c["timestamp_us"], pa.int64()).cast(_TS),
        pa.array(c["ingestion_us"], pa.int64()).cast(_TS),
        pa.repeat(pa.scalar(EVENT_TYPE, pa.string()), n),
        _strings(c["channel"]),
        _strings(c["message_id"]),
        _strings(c["event_id"]),
        _strings(c["publication_id"]),
        pa.array(c["is_test"], pa.bool_()),
        _struct(
            RECIPIENT,
            [
                _strings(c["recipient_email"]),
                _strings(c["recipient_name"]),
                _strings(c["recipient_number"]),
            ],
        ),
        _struct(
            SENDER,
            [
                _strings(c["sender_email"]),
                _strings(c["sender_name"]),
                _strings(c["sender_reply_to"]),
                _numbers(c["sender_numbers"]),
            ],
        ),
        _struct(
            CONTENT,
            [
                _strings(c["subject"]),
                _strings(c["html"]),
                _strings(c["text"]),
                _strings(c["message"]),
            ],
        ),
        _strings(c["profile_id"]),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
