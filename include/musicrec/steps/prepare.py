"""The prepare step: a trailing window of accepted events to binarized, confidence-weighted
interactions for implicit ALS.

Writes ``lake/interactions/<level>/as_of=<date>/split=train|holdout`` (train: the window minus
its last ``holdout_days``; holdout: those days, for evaluation) and extends the persistent
user and item dictionaries (ids are appended, never renumbered). The window's counts are
the sum of its days' stream counts (``model.daily_counts``): only days whose accepted events
changed since they were counted are read from raw events.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import config
from musicrec import constants as c
from musicrec.config import PrepareConfig
from musicrec.exceptions import InsufficientHistoryError, MissingInputError
from musicrec.lake import io, swap
from musicrec.model import daily_counts
from musicrec.model.prepare import (
    ITEM_ID,
    ITEM_IDX,
    USER_IDX,
    attach_ids,
    extend_dictionary,
    min_support,
    with_rating,
)
from musicrec.runtime.jobs import base_parser

log = logging.getLogger("musicrec.prepare")
NAME = "prepare"


def parse_args(argv: Sequence[str] | None) -> tuple[PrepareConfig, argparse.Namespace]:
    p = base_parser(__doc__)
    p.add_argument("--date", type=date.fromisoformat, required=True, help="last day of window")
    p.add_argument("--accepted", type=Path, default=None, help="accepted events table")
    config.add_options(p, PrepareConfig)
    args = p.parse_args(argv)
    if args.accepted is None:
        args.accepted = args.data_root / c.ACCEPTED_EVENTS
    return config.from_options(PrepareConfig, args), args


def interactions_path(root: Path, level: str) -> Path:
    return root / c.INTERACTIONS / level


def dictionary_path(root: Path, name: str) -> Path:
    return root / c.DICTIONARIES / name


def update_dictionary(
    spark: SparkSession, path: Path, ids: DataFrame, key: str, idx: str
) -> DataFrame:
    """Extend the dictionary at ``path`` and swap it in; return the new one."""
    existing = spark.read.parquet(str(path)) if path.exists() else None
    extended = extend_dictionary(existing, ids, key, idx)
    staged = swap.staging(path)
    extended.coalesce(1).write.parquet(str(staged))
    swap.swap_in(staged, path)
    return spark.read.parquet(str(path))


def dictionaries_of(root: Path, level: str) -> dict[str, Path]:
    return {
        "users": dictionary_path(root, "users"),
        "items": dictionary_path(root, f"items_{level}"),
    }


def write_interactions(
    spark: SparkSession,
    cfg: PrepareConfig,
    root: Path,
    train_counts: DataFrame,
    holdout_counts: DataFrame,
    known: DataFrame,
    as_of: date,
    dictionaries: dict[str, Path],
) -> dict[str, Any]:
    """(user_id, item_id, streams) of train and holdout -> the interactions partition
    ``as_of=D/split=train|holdout`` with ids from the extended dictionaries. Holdout rows of
    users absent from train (``known``: train's users) are left out (the model cannot know
    them)."""
    both = train_counts.select(c.USER_ID, ITEM_ID).unionByName(
        holdout_counts.select(c.USER_ID, ITEM_ID)
    )
    users = update_dictionary(spark, dictionaries["users"], both, c.USER_ID, USER_IDX)
    items = update_dictionary(spark, dictionaries["items"], both, ITEM_ID, ITEM_IDX)
    train = attach_ids(with_rating(train_counts, cfg), users, items).withColumn(
        "split", F.lit("train")
    )
    kept = holdout_counts.join(F.broadcast(known), c.USER_ID, "left_semi")
    holdout = attach_ids(with_rating(kept, cfg), users, items)
    out = train.unionByName(holdout.withColumn("split", F.lit("holdout")))
    out = out.withColumn("as_of", F.lit(as_of.isoformat()))
    target = interactions_path(root, cfg.item_level)
    # By user within each split: train (all but a few rows) is written by every core, not one.
    io.write_partitions(out.repartition(4, "split", USER_IDX), target, ["as_of", "split"])
    return {"target": target, "stats": split_stats(spark, target, as_of)}


def split_stats(spark: SparkSession, target: Path, as_of: date) -> dict[str, dict]:
    """Pairs, users, items and streams of each split of an ``as_of`` partition, as written."""
    written = spark.read.parquet(str(target)).where(F.col("as_of") == as_of.isoformat())
    return {
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


def run(
    spark: SparkSession, cfg: PrepareConfig, root: Path, accepted: Path, as_of: date, run_id: str
) -> dict[str, Any]:
    started = time.monotonic()
    dictionaries = dictionaries_of(root, cfg.item_level)
    recovered = [line for path in dictionaries.values() for line in swap.recover(path)]
    first = as_of - timedelta(days=cfg.window_days - 1)
    cut = as_of - timedelta(days=cfg.holdout_days)  # train: [first, cut], holdout: (cut, as_of]
    if not io.table_exists(accepted):
        raise MissingInputError(f"no accepted events at {accepted}: run ingest first")
    with daily_counts.window(spark, cfg, accepted, root, first, as_of) as (days, refreshed):
        # Summed once: minimum support reads the sums three times (item counts, user counts,
        # the joins), and each sum is a hash aggregation over every day of the window.
        window_sums = daily_counts.summed(days, first, cut).cache()
        train_counts = min_support(window_sums, cfg).cache()
        holdout_counts = daily_counts.summed(days, cut + timedelta(days=1), as_of).cache()
        if train_counts.limit(1).count() == 0:
            raise InsufficientHistoryError(
                f"no training interactions in {first}..{cut} (after minimum support): "
                "nothing to train on yet"
            )
        # Train's users, one column of at most every user, read twice: cached, and broadcast
        # to the holdout rows rather than shuffling both sides by user.
        known = train_counts.select(c.USER_ID).distinct().cache()
        snapshot = write_interactions(
            spark, cfg, root, train_counts, holdout_counts, known, as_of, dictionaries
        )
        target, stats = snapshot["target"], snapshot["stats"]
        without_train = (
            holdout_counts.join(F.broadcast(known), c.USER_ID, "left_anti")
            .select(c.USER_ID)
            .distinct()
            .count()
        )
        known.unpersist()
        window_sums.unpersist()
    return {
        "step": NAME,
        "key": f"{cfg.item_level}_{as_of}",
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "config": vars(cfg),
        "inputs": {
            "accepted": str(accepted),
            "event_dates": [first.isoformat(), as_of.isoformat()],
            "train_dates": [first.isoformat(), cut.isoformat()],
            "daily_counts": str(daily_counts.table_path(root, cfg.item_level)),
        },
        "outputs": {
            "interactions": str(target),
            "partition": f"as_of={as_of.isoformat()}",
            "users_dictionary": str(dictionaries["users"]),
            "items_dictionary": str(dictionaries["items"]),
            "recovered": recovered,
        },
        "counts": {
            "events_in_window": sum(day["events"] for day in refreshed.days.values()),
            "train": stats.get("train"),
            "holdout": stats.get("holdout"),
            "holdout_users_without_train": without_train,
        },
        "daily_counts": refreshed.as_dict(),
        "seconds": round(time.monotonic() - started, 2),
    }
