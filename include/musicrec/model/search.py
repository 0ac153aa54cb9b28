"""Hyperparameter search: a grid over rank, regularisation and alpha, scored by NDCG@10 of
new items on a validation split of the training pairs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.config import ALSConfig
from musicrec.evaluation import ranking
from musicrec.model import scoring
from musicrec.model.prepare import ITEM_IDX, USER_IDX

log = logging.getLogger(__name__)
VALIDATION_FRACTION = 0.2

# fit(spark, pairs, cfg) -> (users, items, seconds): users and items are (id, features) frames.
Fit = Callable[[SparkSession, DataFrame, ALSConfig], tuple[DataFrame, DataFrame, float]]


def hash_split(interactions: DataFrame, fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Deterministic validation split of (user, item) pairs by hash: never randomSplit."""
    bucket = F.abs(F.xxhash64(F.col(USER_IDX), F.col(ITEM_IDX), F.lit(seed))) % 1000
    held = bucket < int(fraction * 1000)
    return interactions.where(~held), interactions.where(held)


def validation_ndcg(
    spark: SparkSession, users: DataFrame, items: DataFrame, seen: DataFrame, relevant: DataFrame
) -> float:
    item_vectors, known = scoring.item_matrix(items)
    rows = ranking.user_rows(users, seen, relevant)
    per_user = ranking.evaluate(spark, rows, item_vectors, known, subsets=("new",), ks=(10,))
    return float(ranking.summarize(per_user, len(item_vectors), ks=(10,))["ndcg@10"])


def grid(ranks: list[int], reg_params: list[float], alphas: list[float]) -> list[dict[str, Any]]:
    return [
        {"rank": r, "reg_param": g, "alpha": a} for r in ranks for g in reg_params for a in alphas
    ]


def search(
    spark: SparkSession,
    train: DataFrame,
    base: ALSConfig,
    trials: list[dict[str, Any]],
    fit: Fit,
    work: Path,
) -> tuple[ALSConfig, list[dict[str, Any]]]:
    """Fit every trial on a hash split written out before fitting (SPARK-28927); return the
    best configuration (ties: the smaller rank) and every trial's score."""
    fit_part, val_part = hash_split(train, VALIDATION_FRACTION, base.seed)
    fit_part.write.parquet(str(work / "fit"))
    val_part.write.parquet(str(work / "validation"))
    fit_df = spark.read.parquet(str(work / "fit")).cache()
    val_df = spark.read.parquet(str(work / "validation"))
    scored = []
    for trial in trials:
        cfg = replace(base, **trial)
        users, items, seconds = fit(spark, fit_df, cfg)
        ndcg = validation_ndcg(spark, users, items, fit_df, val_df)
        scored.append({**trial, "ndcg@10": ndcg, "fit_seconds": round(seconds, 2)})
        log.info("search %s", scored[-1])
    best = max(scored, key=lambda t: (t["ndcg@10"], -t["rank"]))
    fit_df.unpersist()
    return replace(base, **{k: best[k] for k in ("rank", "reg_param", "alpha")}), scored
