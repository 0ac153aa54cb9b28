"""Spark schemas of the landing events and the lake tables."""

from __future__ import annotations

from pyspark.sql import types as T

from musicrec import constants as c

CORRUPT = "_corrupt_record"

_EVENT_FIELDS = [
    (c.EVENT_ID, T.StringType()),
    (c.USER_ID, T.StringType()),
    (c.TRACK_ID, T.StringType()),
    (c.ARTIST_ID, T.StringType()),
    (c.ARTIST_NAME, T.StringType()),
    (c.TRACK_NAME, T.StringType()),
    (c.EVENT_TS, T.TimestampType()),
    (c.MS_PLAYED, T.LongType()),
    (c.TRACK_DURATION_MS, T.LongType()),
    (c.REASON_END, T.StringType()),
    (c.PLATFORM, T.StringType()),
]

# Explicit schema of a landing event. Unknown extra fields are ignored by design.
EVENT_SCHEMA = T.StructType([T.StructField(n, t, True) for n, t in _EVENT_FIELDS])
# Typed parse with a corrupt-record column: catches broken JSON and type mismatches alike.
PARSE_SCHEMA = T.StructType([*EVENT_SCHEMA.fields, T.StructField(CORRUPT, T.StringType(), True)])
# Every field as text: tells a type mismatch (parses here) from broken JSON (does not).
TEXT_SCHEMA = T.StructType(
    [T.StructField(n, T.StringType(), True) for n, _ in _EVENT_FIELDS]
    + [T.StructField(CORRUPT, T.StringType(), True)]
)
EVENT_ID_ONLY = T.StructType([T.StructField(c.EVENT_ID, T.StringType(), True)])

# The accepted table (and an ingest's staged rows): event fields, file, partition columns.
ACCEPTED_SCHEMA = T.StructType(
    [
        *EVENT_SCHEMA.fields,
        T.StructField(c.SOURCE_FILE, T.StringType(), True),
        T.StructField(c.EVENT_DATE, T.DateType(), True),
        T.StructField(c.BATCH, T.StringType(), True),
    ]
)
ACCEPTED_COLUMNS = ACCEPTED_SCHEMA.fieldNames()
QUARANTINE_COLUMNS = [c.SOURCE_FILE, c.RAW_LINE, c.QUARANTINE_REASON, c.QUARANTINE_DETAIL, c.BATCH]
