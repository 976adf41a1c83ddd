"""Export destinations: the dataset's records as Parquet or NDJSON files on a local folder or
an S3-compatible bucket (pyarrow). Knows `core` only; the engine feeds it rows."""
