"""The fixed Arrow schema of exported records (AJO's message export shape) and the batches."""

from __future__ import annotations

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


def _numbers(stored: pa.Array) -> pa.Array:
    """SMS sender numbers, stored as JSON array text."""
    if stored.null_count == len(stored):  # no SMS in the batch: nothing to decode
        return pa.nulls(len(stored), pa.list_(pa.string()))
    return pa.array([decode_numbers(s) for s in stored.to_pylist()], pa.list_(pa.string()))


def _struct(struct_type: pa.StructType, arrays: list[pa.Array]) -> pa.StructArray:
    return pa.StructArray.from_arrays(arrays, fields=list(struct_type))


def nest(flat: pa.RecordBatch) -> pa.RecordBatch:
    """Dataset rows (flat columns, as stored) as a batch of SCHEMA: no copy of the strings."""
    c = flat.column
    return pa.RecordBatch.from_arrays(
        [
            c("timestamp_us").cast(_TS),
            c("ingestion_us").cast(_TS),
            pa.repeat(pa.scalar(EVENT_TYPE, pa.string()), len(flat)),
            c("channel"),
            c("message_id"),
            c("event_id"),
            c("publication_id"),
            c("is_test"),
            _struct(RECIPIENT, [c("recipient_email"), c("recipient_name"), c("recipient_number")]),
            _struct(
                SENDER,
                [
                    c("sender_email"),
                    c("sender_name"),
                    c("sender_reply_to"),
                    _numbers(c("sender_numbers")),
                ],
            ),
            _struct(CONTENT, [c("subject"), c("html"), c("text"), c("message")]),
            c("profile_id"),
        ],
        schema=SCHEMA,
    )
