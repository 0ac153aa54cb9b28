"""The validate step: the Great Expectations suite on one interval's accepted events.

The event-time window checked is the one the interval's ingest accepted events in, read from
its manifest: a lateness given to ingest reaches validation without being repeated.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import config
from musicrec import constants as c
from musicrec.config import IngestConfig, Interval, ValidationConfig, parse_utc
from musicrec.exceptions import DataRejectedError, MissingInputError
from musicrec.ingest.suite import Bounds, run_suite, volume_bounds
from musicrec.lake import io
from musicrec.runtime.jobs import base_parser

log = logging.getLogger("musicrec.validate")
NAME = "validate"


def parse_args(
    argv: Sequence[str] | None,
) -> tuple[Interval, ValidationConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument(
        "--accepted",
        type=Path,
        default=None,
        help="accepted-events table to validate (default <data-root>/lake/...)",
    )
    config.add_options(p, ValidationConfig)
    args = p.parse_args(argv)
    if args.accepted is None:
        args.accepted = args.data_root / c.ACCEPTED_EVENTS
    return Interval.parse(args.start, args.end), config.from_options(ValidationConfig, args), args


def volume_history(data_root: Path, interval: Interval, days: int) -> list[int]:
    """Accepted counts of the same-length intervals in the trailing days, from manifests."""
    counts = []
    for back in range(1, days + 1):
        earlier = Interval(
            interval.start - timedelta(days=back), interval.end - timedelta(days=back)
        )
        path = io.manifest_path(data_root, "ingest", earlier.batch_id)
        if path.exists():
            counts.append(int(io.read_json(path)["counts"]["accepted"]))
    return counts


def accepted_window(ingest_manifest: dict[str, Any], interval: Interval) -> tuple:
    """The event-time window the ingest run accepted events in."""
    window = ingest_manifest.get("window")
    if window:
        return parse_utc(str(window["start"])), parse_utc(str(window["end"]))
    # A manifest from before the window was recorded: the defaults it ran with.
    log.warning("ingest manifest has no window: using the default lateness")
    defaults = IngestConfig(Path("."), interval)
    return defaults.window_start, defaults.window_end


def counts_frame(spark: SparkSession, manifest: dict) -> DataFrame:
    counts = manifest["counts"]
    ratio = counts["quarantined"] / counts["read"] if counts["read"] else 0.0
    return spark.createDataFrame(
        [(counts["read"], counts["quarantined"], float(ratio))],
        "read long, quarantined long, quarantine_ratio double",
    )


def run(
    spark: SparkSession,
    root: Path,
    interval: Interval,
    cfg: ValidationConfig,
    accepted_path: Path,
    run_id: str,
) -> dict[str, Any]:
    """Run the suite; returns the manifest (``success`` says whether it passed)."""
    started = time.monotonic()
    batch = interval.batch_id
    ingest_manifest_path = io.manifest_path(root, "ingest", batch)
    if not ingest_manifest_path.exists():
        raise MissingInputError(f"no ingest manifest for {batch}: run ingest first")
    ingest_manifest = io.read_json(ingest_manifest_path)
    events = spark.read.parquet(str(accepted_path)).where(F.col(c.BATCH) == batch)
    history = volume_history(root, interval, cfg.volume_history_days)
    low, high = volume_bounds(history, cfg)
    window_start, window_end = accepted_window(ingest_manifest, interval)
    max_ms = int(ingest_manifest.get("config", {}).get("max_ms_played", IngestConfig.max_ms_played))
    bounds = Bounds(window_start, window_end, max_ms, low, high, cfg.quarantine_max_ratio)
    docs = root / c.REPORTS / "data_docs" / batch
    outcome = run_suite(
        events, counts_frame(spark, ingest_manifest), bounds, docs, f"listening_events.{batch}"
    )
    return {
        "step": NAME,
        "key": batch,
        "run_id": run_id,
        "batch": batch,
        "success": outcome.success,
        "summary": None if outcome.success else outcome.summary(batch),
        "inputs": {"accepted": str(accepted_path), "ingest_manifest": str(ingest_manifest_path)},
        "outputs": {"data_docs": outcome.data_docs},
        "expectations_evaluated": outcome.evaluated,
        "failures": outcome.failures,
        "volume_history": history,
        "bounds": {
            "min_rows": low,
            "max_rows": high,
            "event_ts": [window_start.isoformat(), window_end.isoformat()],
        },
        "seconds": round(time.monotonic() - started, 2),
    }


def enforce(manifest: dict[str, Any]) -> None:
    """Rejected data stops the DAG here (exit 3, not retried)."""
    if not manifest["success"]:
        raise DataRejectedError(manifest["summary"])
