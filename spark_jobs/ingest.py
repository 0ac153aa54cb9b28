"""Ingest one interval of landing files: accepted, quarantined or duplicate, exactly once.

    python spark_jobs/ingest.py --data-root data --start 2026-01-05 --end 2026-01-06

Re-running an interval replaces exactly that interval's partitions (accepted rows of batch
``<interval>`` under each event date, and the batch's quarantine partition). A manifest
records read = accepted + quarantined (by reason) + duplicates, counted from written data.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from musicrec import constants as c
from musicrec import io
from musicrec.config import IngestConfig, Interval
from musicrec.exceptions import MissingInputError, MusicrecError
from musicrec.ingest import (
    DUP_DATE,
    STAGED_QUARANTINE,
    duplicate_copies,
    parse,
    repeated_hashes,
    route,
    stage_rows,
    staged_quarantine,
    staged_valid,
    without_copies,
)
from musicrec.jobs import base_parser, entry, session_for
from musicrec.schemas import ACCEPTED_SCHEMA
from musicrec.spark_conf import preset
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("musicrec.ingest")


def parse_args(argv: Sequence[str] | None) -> tuple[IngestConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--start", required=True, help="interval start, ISO (inclusive)")
    p.add_argument("--end", required=True, help="interval end, ISO (exclusive)")
    p.add_argument("--missing-hours", choices=["fail", "warn"], default="fail")
    p.add_argument("--allowed-lateness-hours", type=float, default=48.0)
    p.add_argument("--dedup-lookback-hours", type=int, default=1)
    args = p.parse_args(argv)
    cfg = IngestConfig(
        data_root=args.data_root,
        interval=Interval.parse(args.start, args.end),
        allowed_lateness=timedelta(hours=args.allowed_lateness_hours),
        missing_hours=args.missing_hours,
        dedup_lookback_hours=args.dedup_lookback_hours,
    )
    return cfg, args


def seen_before(spark: SparkSession, cfg: IngestConfig) -> DataFrame | None:
    """Ids delivered in the lookback hours, or accepted by any other batch for these dates."""
    landing = cfg.data_root / c.LANDING_EVENTS
    lookback = [
        cfg.interval.start - timedelta(hours=h + 1) for h in range(cfg.dedup_lookback_hours)
    ]
    folders, _ = io.find_hours(landing, lookback)
    parts = [ids for ids in [io.read_event_ids(spark, folders)] if ids is not None]
    # Only the folders of other batches under the window's dates: opening the whole table
    # would list every file of its history first, a cost that grows every day.
    other = io.other_batches(
        cfg.data_root / c.ACCEPTED_EVENTS,
        cfg.window_start.date(),
        cfg.window_end.date(),
        cfg.interval.batch_id,
    )
    if other:
        parts.append(io.read_event_ids_of(spark, cfg.data_root / c.ACCEPTED_EVENTS, other))
    if not parts:
        return None
    ids = parts[0]
    for more in parts[1:]:
        ids = ids.unionByName(more)
    return ids.distinct()


def count_outcomes(staged: DataFrame, copies: DataFrame | None) -> dict:
    """Read, duplicates, expected accepted rows per event date and quarantined per reason.

    Counted from the staged files (one row per line read): one aggregate over the partition
    column and the quarantine reason (a handful of groups); the duplicate copies, a small
    frame, carry their own dates; the accepted rows of a date are the difference.
    Reconciliation compares every date and reason with what was published.
    """
    dups: dict = {}
    if copies is not None:
        per_date = copies.groupBy(DUP_DATE).agg(F.count(F.lit(1)).alias("n"))
        dups = {r[DUP_DATE]: r["n"] for r in per_date.collect()}
    date = F.col(c.EVENT_DATE)
    reason = F.when(date.isNull(), F.col(STAGED_QUARANTINE[c.QUARANTINE_REASON]))
    groups = staged.groupBy(date, reason.alias(c.QUARANTINE_REASON)).agg(
        F.count(F.lit(1)).alias("n")
    )
    read, per_day, quarantined = 0, {}, {}
    for r in groups.collect():
        read += r["n"]
        if r[c.EVENT_DATE] is not None:
            per_day[r[c.EVENT_DATE]] = r["n"]
        else:
            quarantined[r[c.QUARANTINE_REASON]] = r["n"]
    accepted = {d.isoformat(): n - dups.get(d, 0) for d, n in per_day.items()}
    return {
        "read": read,
        "duplicates": sum(dups.values()),
        "accepted_by_date": {d: n for d, n in sorted(accepted.items()) if n > 0},
        "quarantined_by_reason": dict(sorted(quarantined.items())),
    }


def remove_copies(stage: Path, valid: DataFrame, copies: DataFrame) -> None:
    """Rewrite the staged partitions holding duplicate copies without them.

    Only the event dates with a copy are rewritten (into the staging folder's ``_dedup``, then
    swapped in); a date left with no row loses its staged folder.
    """
    dates = sorted({r[DUP_DATE] for r in copies.select(DUP_DATE).distinct().collect()})
    fixed = stage / "_dedup"
    kept = without_copies(valid.where(F.col(c.EVENT_DATE).isin(dates)), copies)
    io.write_staged(kept, fixed, [c.EVENT_DATE, c.BATCH], preset("accepted_parquet"))
    for day in dates:
        name = f"{c.EVENT_DATE}={day.isoformat()}"
        for old in (stage / name).glob(f"{c.BATCH}=*"):
            new = fixed / name / old.name
            if new.is_dir():
                io.replace_dir(new, old)
            else:
                shutil.rmtree(old)
    shutil.rmtree(fixed)


def ingest(spark: SparkSession, cfg: IngestConfig, run_id: str) -> dict:
    started = time.monotonic()
    landing = cfg.data_root / c.LANDING_EVENTS
    folders, missing = io.find_hours(landing, cfg.interval.hours)
    if missing:
        names = ", ".join(f"{h:%Y-%m-%dT%H}" for h in missing)
        if cfg.missing_hours == "fail":
            raise MissingInputError(f"{len(missing)} landing hour folder(s) missing: {names}")
        log.warning("MISSING landing hours (policy=warn): %s", names)
    batch = cfg.interval.batch_id
    accepted_path = cfg.data_root / c.ACCEPTED_EVENTS
    quarantine_path = cfg.data_root / c.QUARANTINE_EVENTS
    # One pass reads, parses and routes every line and writes it, valid or not, into this
    # batch's staging folder in the accepted table's own format: the valid rows' files are
    # published by renaming them, so no line is parsed twice and nothing is cached (only the
    # dates that hold duplicate copies are written again, without them). Readers of the
    # table never see the staging folder; a run failing before the publish step leaves the
    # table as it was.
    stage, interrupted = io.staging_for(accepted_path, batch)
    staged_frame = stage_rows(route(parse(io.read_lines(spark, folders)), cfg), batch)
    io.write_staged(staged_frame, stage, [c.EVENT_DATE, c.BATCH], preset("accepted_parquet"))
    staged = io.read_staged(spark, stage, ACCEPTED_SCHEMA)
    valid = staged_valid(staged)
    seen = seen_before(spark, cfg)
    copies = None  # every id delivered once: nothing to rewrite
    repeated = repeated_hashes(valid, seen).persist(StorageLevel.MEMORY_AND_DISK)
    # count(), not isEmpty(): one job over all partitions, not a series of growing ones.
    if repeated.count() > 0:
        copies = duplicate_copies(valid, seen, repeated).persist(StorageLevel.MEMORY_AND_DISK)
    expected = count_outcomes(staged, copies)
    if copies is not None:
        remove_copies(stage, valid, copies)
        copies.unpersist()
    repeated.unpersist()
    if expected["quarantined_by_reason"]:
        cleaned = io.write_partitions(staged_quarantine(staged, batch), quarantine_path, [c.BATCH])
        dropped: list[str] = []
    else:  # a clean interval: no stale partition left
        cleaned, dropped = io.drop_partition(quarantine_path, f"{c.BATCH}={batch}")
    cleaned += interrupted + io.publish_staged(stage, accepted_path)
    removed = {"cleaned": cleaned, "dropped": dropped}
    return reconcile(spark, cfg, run_id, folders, missing, expected, started, removed)


def written_counts(spark: SparkSession, cfg: IngestConfig) -> tuple[dict[str, int], dict[str, int]]:
    """Accepted rows per event date and quarantined rows per reason, read back from the lake."""
    batch = cfg.interval.batch_id
    accepted: dict[str, int] = {}
    if io.table_exists(cfg.data_root / c.ACCEPTED_EVENTS):
        table = spark.read.parquet(str(cfg.data_root / c.ACCEPTED_EVENTS))
        for row in table.where(F.col(c.BATCH) == batch).groupBy(c.EVENT_DATE).count().collect():
            accepted[row[c.EVENT_DATE].isoformat()] = row["count"]
    quarantined: dict[str, int] = {}
    if io.table_exists(cfg.data_root / c.QUARANTINE_EVENTS):
        table = spark.read.parquet(str(cfg.data_root / c.QUARANTINE_EVENTS))
        for row in (
            table.where(F.col(c.BATCH) == batch).groupBy(c.QUARANTINE_REASON).count().collect()
        ):
            quarantined[row[c.QUARANTINE_REASON]] = row["count"]
    return accepted, quarantined


def reconcile(spark, cfg, run_id, folders, missing, expected, started, removed):  # noqa: ANN001, ANN201
    batch = cfg.interval.batch_id
    # Partitions this batch wrote in an earlier run under dates it no longer produces.
    stale = removed["dropped"] + io.remove_stale_batch_partitions(
        cfg.data_root / c.ACCEPTED_EVENTS, batch, set(expected["accepted_by_date"])
    )
    accepted_by_date, quarantined = written_counts(spark, cfg)
    accepted = sum(accepted_by_date.values())
    total = accepted + sum(quarantined.values()) + expected["duplicates"]
    manifest = {
        "step": "ingest",
        "run_id": run_id,
        "batch": batch,
        "interval": {"start": cfg.interval.start, "end": cfg.interval.end},
        "inputs": {
            "hour_folders": [str(f) for f in folders],
            "files": [str(p) for f in folders for p in io.data_files(f)],
            "missing_hours": [h.isoformat() for h in missing],
        },
        "outputs": {
            "accepted": str(cfg.data_root / c.ACCEPTED_EVENTS),
            "accepted_partitions": sorted(accepted_by_date),
            "quarantine": str(cfg.data_root / c.QUARANTINE_EVENTS),
            "removed_stale_partitions": stale,
            "removed_interrupted_writes": removed["cleaned"],
        },
        "counts": {
            "read": expected["read"],
            "accepted": accepted,
            "accepted_by_event_date": accepted_by_date,
            "quarantined": sum(quarantined.values()),
            "quarantined_by_reason": quarantined,
            "duplicates": expected["duplicates"],
        },
        "spark_version": spark.version,
        "seconds": round(time.monotonic() - started, 2),
    }
    if (
        total != expected["read"]
        or accepted_by_date != expected["accepted_by_date"]
        or quarantined != expected["quarantined_by_reason"]
    ):
        raise MusicrecError(
            f"reconciliation failed, nothing may be lost: written {manifest['counts']}, "
            f"expected from the parsed lines {expected}"
        )
    io.write_json_atomic(io.manifest_path(cfg.data_root, "ingest", batch), manifest)
    log.info(
        "ingest %s: read=%d accepted=%d quarantined=%d %s duplicates=%d",
        batch,
        expected["read"],
        accepted,
        sum(quarantined.values()),
        quarantined,
        expected["duplicates"],
    )
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    spark = session_for(args, "ingest")
    ingest(spark, cfg, args.run_id)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
