"""Validate one interval's accepted events with the Great Expectations suite.

    python spark_jobs/validate.py --data-root data --start 2026-01-05 --end 2026-01-06

Exits 3 (not retryable) with a readable summary when an expectation fails. Data Docs for every
run are kept under ``<data-root>/reports/data_docs/<batch>/``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from musicrec import constants as c
from musicrec import io
from musicrec.config import IngestConfig, Interval, ValidationConfig
from musicrec.exceptions import DataRejectedError, MissingInputError
from musicrec.jobs import base_parser, entry, session_for
from musicrec.validation import Bounds, run_suite, volume_bounds
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("musicrec.validate")


def parse_args(
    argv: Sequence[str] | None,
) -> tuple[IngestConfig, ValidationConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--allowed-lateness-hours", type=float, default=48.0)
    p.add_argument("--quarantine-max-ratio", type=float, default=0.01)
    p.add_argument("--volume-band", type=float, default=0.5)
    p.add_argument(
        "--accepted",
        type=Path,
        default=None,
        help="accepted-events table to validate (default <data-root>/lake/...)",
    )
    args = p.parse_args(argv)
    ingest_cfg = IngestConfig(
        args.data_root,
        Interval.parse(args.start, args.end),
        allowed_lateness=timedelta(hours=args.allowed_lateness_hours),
    )
    cfg = ValidationConfig(
        quarantine_max_ratio=args.quarantine_max_ratio, volume_band=args.volume_band
    )
    return ingest_cfg, cfg, args


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


def counts_frame(spark: SparkSession, manifest: dict) -> DataFrame:
    counts = manifest["counts"]
    ratio = counts["quarantined"] / counts["read"] if counts["read"] else 0.0
    return spark.createDataFrame(
        [(counts["read"], counts["quarantined"], float(ratio))],
        "read long, quarantined long, quarantine_ratio double",
    )


def validate(
    spark: SparkSession, icfg: IngestConfig, cfg: ValidationConfig, accepted_path: Path, run_id: str
) -> dict:
    started = time.monotonic()
    batch = icfg.interval.batch_id
    ingest_manifest_path = io.manifest_path(icfg.data_root, "ingest", batch)
    if not ingest_manifest_path.exists():
        raise MissingInputError(f"no ingest manifest for {batch}: run ingest first")
    ingest_manifest = io.read_json(ingest_manifest_path)
    events = spark.read.parquet(str(accepted_path)).where(F.col(c.BATCH) == batch)
    history = volume_history(icfg.data_root, icfg.interval, cfg.volume_history_days)
    low, high = volume_bounds(history, cfg)
    bounds = Bounds(
        icfg.window_start, icfg.window_end, icfg.max_ms_played, low, high, cfg.quarantine_max_ratio
    )
    docs = icfg.data_root / c.REPORTS / "data_docs" / batch
    outcome = run_suite(
        events, counts_frame(spark, ingest_manifest), bounds, docs, f"listening_events.{batch}"
    )
    manifest = {
        "step": "validate",
        "run_id": run_id,
        "batch": batch,
        "success": outcome.success,
        "inputs": {"accepted": str(accepted_path), "ingest_manifest": str(ingest_manifest_path)},
        "outputs": {"data_docs": outcome.data_docs},
        "expectations_evaluated": outcome.evaluated,
        "failures": outcome.failures,
        "volume_history": history,
        "bounds": {"min_rows": low, "max_rows": high},
        "seconds": round(time.monotonic() - started, 2),
    }
    io.write_json_atomic(io.manifest_path(icfg.data_root, "validate", batch), manifest)
    if not outcome.success:
        raise DataRejectedError(outcome.summary(batch))
    log.info(
        "validation passed for %s: %d expectations; Data Docs %s",
        batch,
        outcome.evaluated,
        outcome.data_docs,
    )
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    icfg, cfg, args = parse_args(argv)
    spark = session_for(args, "validate")
    accepted = args.accepted or icfg.data_root / c.ACCEPTED_EVENTS
    validate(spark, icfg, cfg, accepted, args.run_id)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
