"""The ingest step: one interval of landing files to accepted, quarantined or duplicate, once.

Re-running an interval replaces exactly that interval's partitions (accepted rows of batch
``<interval>`` under each event date, and the batch's quarantine partition). The manifest
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
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import config
from musicrec import constants as c
from musicrec.config import IngestConfig, Interval
from musicrec.exceptions import MissingInputError
from musicrec.ingest import dedup, reconcile
from musicrec.ingest.transforms import parse, route, stage_rows, staged_quarantine, staged_valid
from musicrec.lake import io, swap
from musicrec.runtime.jobs import base_parser
from musicrec.runtime.spark_conf import preset
from musicrec.schemas import ACCEPTED_SCHEMA

log = logging.getLogger("musicrec.ingest")
NAME = "ingest"


def parse_args(argv: Sequence[str] | None) -> tuple[IngestConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--start", required=True, help="interval start, ISO (inclusive)")
    p.add_argument("--end", required=True, help="interval end, ISO (exclusive)")
    config.add_options(p, IngestConfig)
    args = p.parse_args(argv)
    interval = Interval.parse(args.start, args.end)
    return config.from_options(
        IngestConfig, args, data_root=args.data_root, interval=interval
    ), args


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


def remove_copies(stage: Path, valid: DataFrame, copies: DataFrame) -> None:
    """Rewrite the staged partitions holding duplicate copies without them.

    Only the event dates with a copy are rewritten (into the staging folder's ``_dedup``, then
    swapped in); a date left with no row loses its staged folder.
    """
    dates = sorted({r[dedup.DUP_DATE] for r in copies.select(dedup.DUP_DATE).distinct().collect()})
    fixed = stage / "_dedup"
    kept = dedup.without_copies(valid.where(F.col(c.EVENT_DATE).isin(dates)), copies)
    io.write_staged(kept, fixed, [c.EVENT_DATE, c.BATCH], preset("accepted_parquet"))
    for day in dates:
        name = f"{c.EVENT_DATE}={day.isoformat()}"
        for old in (stage / name).glob(f"{c.BATCH}=*"):
            new = fixed / name / old.name
            if new.is_dir():
                swap.swap_in(new, old)
            else:
                shutil.rmtree(old)
    shutil.rmtree(fixed)


def run(spark: SparkSession, cfg: IngestConfig, run_id: str) -> dict[str, Any]:
    """Ingest the interval; returns its manifest (raises if the counts do not reconcile)."""
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
    repeated = dedup.repeated_hashes(valid, seen).persist(StorageLevel.MEMORY_AND_DISK)
    # count(), not isEmpty(): one job over all partitions, not a series of growing ones.
    if repeated.count() > 0:
        copies = dedup.duplicate_copies(valid, seen, repeated).persist(StorageLevel.MEMORY_AND_DISK)
    want = reconcile.expected(staged, copies)
    if copies is not None:
        remove_copies(stage, valid, copies)
        copies.unpersist()
    repeated.unpersist()
    if want["quarantined_by_reason"]:
        cleaned = io.write_partitions(staged_quarantine(staged, batch), quarantine_path, [c.BATCH])
        dropped: list[str] = []
    else:  # a clean interval: no stale partition left
        cleaned, dropped = io.drop_partition(quarantine_path, f"{c.BATCH}={batch}")
    cleaned += interrupted + io.publish_staged(stage, accepted_path)
    # Partitions this batch wrote in an earlier run under dates it no longer produces.
    stale = dropped + io.remove_stale_batch_partitions(
        accepted_path, batch, set(want["accepted_by_date"])
    )
    accepted_by_date, quarantined = reconcile.written(
        spark.read.parquet(str(accepted_path)) if io.table_exists(accepted_path) else None,
        spark.read.parquet(str(quarantine_path)) if io.table_exists(quarantine_path) else None,
        batch,
    )
    counts = reconcile.check(want, accepted_by_date, quarantined)
    return {
        "step": NAME,
        "key": batch,
        "run_id": run_id,
        "batch": batch,
        "interval": {"start": cfg.interval.start, "end": cfg.interval.end},
        # What validation checks against: the window this run accepted event times in.
        "window": {"start": cfg.window_start, "end": cfg.window_end},
        "config": {n: getattr(cfg, n) for n in config.settings(IngestConfig)},
        "inputs": {
            "hour_folders": [str(f) for f in folders],
            "files": [str(p) for f in folders for p in io.data_files(f)],
            "missing_hours": [h.isoformat() for h in missing],
        },
        "outputs": {
            "accepted": str(accepted_path),
            "accepted_partitions": sorted(accepted_by_date),
            "quarantine": str(quarantine_path),
            "removed_stale_partitions": stale,
            "removed_interrupted_writes": cleaned,
        },
        "counts": counts,
        "spark_version": spark.version,
        "seconds": round(time.monotonic() - started, 2),
    }


def summary(manifest: dict[str, Any]) -> str:
    k = manifest["counts"]
    return (
        f"ingest {manifest['batch']}: read={k['read']} accepted={k['accepted']} "
        f"quarantined={k['quarantined']} {k['quarantined_by_reason']} "
        f"duplicates={k['duplicates']}"
    )
