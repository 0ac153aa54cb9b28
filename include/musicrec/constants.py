"""Column names, reasons, layout and exit codes shared by every step."""

from __future__ import annotations

# --- landing (raw) event fields -------------------------------------------------------------
EVENT_ID = "event_id"
USER_ID = "user_id"
TRACK_ID = "track_id"
ARTIST_ID = "artist_id"
EVENT_TS = "event_ts"
MS_PLAYED = "ms_played"
TRACK_DURATION_MS = "track_duration_ms"
REASON_END = "reason_end"
PLATFORM = "platform"
ARTIST_NAME = "artist_name"
TRACK_NAME = "track_name"

REQUIRED_FIELDS = (EVENT_ID, USER_ID, TRACK_ID, ARTIST_ID, EVENT_TS, MS_PLAYED)
OPTIONAL_FIELDS = (TRACK_DURATION_MS, REASON_END, PLATFORM, ARTIST_NAME, TRACK_NAME)

REASONS_END = ("completed", "skipped", "interrupted", "endplay", "logout")
PLATFORMS = ("ios", "android", "desktop", "web", "speaker")

# --- columns added by ingestion ---------------------------------------------------------------
EVENT_DATE = "event_date"
BATCH = "batch"
SOURCE_FILE = "source_file"
RAW_LINE = "raw_line"
QUARANTINE_REASON = "reason"
QUARANTINE_DETAIL = "detail"
# A staged row's identity while an interval is ingested: its file and its index in that file.
STAGED_FILE = "_file"
STAGED_ROW = "_row"

# --- quarantine reasons (one record, exactly one reason) --------------------------------------
REASON_EMPTY = "empty_line"
REASON_ENCODING = "not_utf8"
REASON_MALFORMED = "malformed_json"
REASON_BAD_TYPE = "bad_type"
REASON_MISSING = "missing_field"
REASON_OUT_OF_RANGE = "out_of_range"
REASON_OUT_OF_WINDOW = "event_time_out_of_window"
QUARANTINE_REASONS = (
    REASON_EMPTY,
    REASON_ENCODING,
    REASON_MALFORMED,
    REASON_BAD_TYPE,
    REASON_MISSING,
    REASON_OUT_OF_RANGE,
    REASON_OUT_OF_WINDOW,
)

# --- data lake layout under the data root -----------------------------------------------------
LANDING_EVENTS = "landing/listening_events"
ACCEPTED_EVENTS = "lake/accepted_events"
QUARANTINE_EVENTS = "lake/quarantine_events"
MANIFESTS = "manifests"
REPORTS = "reports"
CHECKPOINTS = "checkpoints"
# Under the data root: one executor-health summary per Spark application (the on-call view).
EXECUTOR_HEALTH_HISTORY = "monitoring/executor_health.jsonl"
# Under the data root: one record per Airflow task try, written by the operator.
TASK_TRIES_HISTORY = "monitoring/task_tries.jsonl"

# --- exit codes of spark_jobs: the DAG maps NON_RETRYABLE to a fail-fast task failure ---------
EXIT_OK = 0
EXIT_RETRYABLE = 1  # anything unexpected: worth a retry (lost executor, I/O hiccup)
EXIT_BAD_ARGS = 2  # argparse's own code: retrying cannot help
EXIT_DATA_REJECTED = 3  # validation or quality gate failed: retrying cannot help
# A task lost its executor on every attempt Spark gave it (spark.task.maxFailures, or every
# executor excluded): a poison partition. Spark already retried it on other executors, and a
# whole-application retry would take the same executors down again: fail fast for on-call.
EXIT_POISON_TASK = 4
NON_RETRYABLE_EXIT_CODES = (EXIT_BAD_ARGS, EXIT_DATA_REJECTED, EXIT_POISON_TASK)

INTERACTIONS = "lake/interactions"
DICTIONARIES = "lake/dictionaries"
# (user_id, item_id, streams) per event date and level: what prepare sums over its window.
DAILY_COUNTS = "lake/daily_counts"
# (item_id, item_name) per level, from imported datasets that carry names but no events.
ITEM_NAMES = "lake/item_names"
MODELS = "models"
SERVING = "serving"
SPLIT_TRAIN = "train"
SPLIT_HOLDOUT = "holdout"
