"""Binarize and confidence-weight a trailing window of accepted events for implicit ALS.

    python spark_jobs/prepare.py --data-root data --date 2026-01-14 [--window-days 28]

Writes ``lake/interactions/<level>/as_of=<date>/split=train|holdout`` (train: the window minus
its last ``--holdout-days``; holdout: those days, for evaluation) and extends the persistent
user and item dictionaries (ids are appended, never renumbered).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from musicrec import constants as c
from musicrec import io
from musicrec.config import ITEM_LEVELS, SCHEMES, PrepareConfig
from musicrec.exceptions import InsufficientHistoryError, MissingInputError
from musicrec.jobs import base_parser, entry, session_for
from musicrec.prepare import (
    ITEM_ID,
    ITEM_IDX,
    USER_IDX,
    attach_ids,
    extend_dictionary,
    min_support,
    stream_counts,
    with_rating,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger("musicrec.prepare")


def parse_args(argv: Sequence[str] | None) -> tuple[PrepareConfig, argparse.Namespace]:
    d = PrepareConfig()
    p = base_parser(__doc__)
    p.add_argument("--date", type=date.fromisoformat, required=True, help="last day of window")
    p.add_argument("--window-days", type=int, default=d.window_days)
    p.add_argument("--holdout-days", type=int, default=d.holdout_days)
    p.add_argument("--item-level", choices=ITEM_LEVELS, default=d.item_level)
    p.add_argument("--min-ms-played", type=int, default=d.min_ms_played)
    p.add_argument("--scheme", choices=SCHEMES, default=d.scheme)
    p.add_argument("--epsilon", type=float, default=d.epsilon)
    p.add_argument("--min-user-items", type=int, default=d.min_user_items)
    p.add_argument("--min-item-users", type=int, default=d.min_item_users)
    p.add_argument("--accepted", type=Path, default=None, help="accepted events table")
    a = p.parse_args(argv)
    cfg = PrepareConfig(
        a.window_days,
        a.holdout_days,
        a.item_level,
        a.min_ms_played,
        a.scheme,
        a.epsilon,
        a.min_user_items,
        a.min_item_users,
    )
    return cfg, a


def interactions_path(root: Path, level: str) -> Path:
    return root / c.INTERACTIONS / level


def dictionary_path(root: Path, name: str) -> Path:
    return root / c.DICTIONARIES / name


def read_window(spark: SparkSession, accepted: Path, first: date, last: date) -> DataFrame:
    if not io.table_exists(accepted):
        raise MissingInputError(f"no accepted events at {accepted}: run ingest first")
    events = spark.read.parquet(str(accepted))
    return events.where(F.col(c.EVENT_DATE).between(F.lit(first), F.lit(last)))


def update_dictionary(
    spark: SparkSession, path: Path, ids: DataFrame, key: str, idx: str
) -> DataFrame:
    """Extend the dictionary at ``path`` and swap it in atomically; return the new one."""
    io.recover_dir(path)
    existing = spark.read.parquet(str(path)) if path.exists() else None
    extended = extend_dictionary(existing, ids, key, idx)
    staged = io.staging_dir(path)
    extended.coalesce(1).write.parquet(str(staged))
    io.replace_dir(staged, path)
    return spark.read.parquet(str(path))


def prepare(
    spark: SparkSession, cfg: PrepareConfig, root: Path, accepted: Path, as_of: date, run_id: str
) -> dict:
    started = time.monotonic()
    first = as_of - timedelta(days=cfg.window_days - 1)
    cut = as_of - timedelta(days=cfg.holdout_days)  # train: [first, cut], holdout: (cut, as_of]
    events = read_window(spark, accepted, first, as_of)
    train_events = events.where(F.col(c.EVENT_DATE) <= F.lit(cut))
    holdout_events = events.where(F.col(c.EVENT_DATE) > F.lit(cut))
    train_counts = min_support(stream_counts(train_events, cfg), cfg).cache()
    holdout_counts = stream_counts(holdout_events, cfg).cache()
    if train_counts.limit(1).count() == 0:
        raise InsufficientHistoryError(
            f"no training interactions in {first}..{cut} (after minimum support): "
            "nothing to train on yet"
        )
    both = train_counts.select(c.USER_ID, ITEM_ID).unionByName(
        holdout_counts.select(c.USER_ID, ITEM_ID)
    )
    users = update_dictionary(spark, dictionary_path(root, "users"), both, c.USER_ID, USER_IDX)
    items = update_dictionary(
        spark, dictionary_path(root, f"items_{cfg.item_level}"), both, ITEM_ID, ITEM_IDX
    )
    train = attach_ids(with_rating(train_counts, cfg), users, items).withColumn(
        "split", F.lit("train")
    )
    # Only users the model can know (present in train) can be evaluated on the holdout.
    known = train_counts.select(c.USER_ID).distinct()
    holdout = attach_ids(with_rating(holdout_counts.join(known, c.USER_ID), cfg), users, items)
    out = train.unionByName(holdout.withColumn("split", F.lit("holdout")))
    out = out.withColumn("as_of", F.lit(as_of.isoformat()))
    target = interactions_path(root, cfg.item_level)
    io.write_partitions(out.repartition(4, "split"), target, ["as_of", "split"])
    written = spark.read.parquet(str(target)).where(F.col("as_of") == as_of.isoformat())
    stats = {
        row["split"]: row.asDict()
        for row in written.groupBy("split")
        .agg(
            F.count(F.lit(1)).alias("pairs"),
            F.countDistinct(USER_IDX).alias("users"),
            F.countDistinct(ITEM_IDX).alias("items"),
            F.sum("streams").alias("streams"),
        )
        .collect()
    }
    manifest = {
        "step": "prepare",
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "config": vars(cfg),
        "inputs": {
            "accepted": str(accepted),
            "event_dates": [first.isoformat(), as_of.isoformat()],
            "train_dates": [first.isoformat(), cut.isoformat()],
        },
        "outputs": {
            "interactions": str(target),
            "partition": f"as_of={as_of.isoformat()}",
            "users_dictionary": str(dictionary_path(root, "users")),
            "items_dictionary": str(dictionary_path(root, f"items_{cfg.item_level}")),
        },
        "counts": {
            "events_in_window": events.count(),
            "train": stats.get("train"),
            "holdout": stats.get("holdout"),
            "holdout_users_without_train": holdout_counts.join(known, c.USER_ID, "left_anti")
            .select(c.USER_ID)
            .distinct()
            .count(),
        },
        "seconds": round(time.monotonic() - started, 2),
    }
    io.write_json_atomic(io.manifest_path(root, "prepare", f"{cfg.item_level}_{as_of}"), manifest)
    log.info("prepare %s: train %s, holdout %s", as_of, stats.get("train"), stats.get("holdout"))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    spark = session_for(args, "prepare")
    accepted = args.accepted or args.data_root / c.ACCEPTED_EVENTS
    prepare(spark, cfg, args.data_root, accepted, args.date, args.run_id)
    return c.EXIT_OK


if __name__ == "__main__":
    entry(main)
