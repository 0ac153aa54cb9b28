"""Hyperparameter search: a grid over rank, regularisation and alpha, scored by NDCG@10 of
new items on a validation split of the training pairs."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.config import ALSConfig
from musicrec.evaluation import ranking
from musicrec.lake import io
from musicrec.model import layouts
from musicrec.model.prepare import ITEM_IDX, USER_IDX

log = logging.getLogger(__name__)
VALIDATION_FRACTION = 0.2
# Grids per layout. MLlib's regulariser is scaled by each row's count, the grid layouts' is
# a plain lambda, so their ranges differ by orders of magnitude. Measured on the small
# benchmark (NDCG@10 of new items, half gridify, alpha 10): lambda 3 -> 0.160, 10 -> 0.162,
# 30 -> 0.163, 100 -> 0.177, 300 -> 0.074; alpha 40 and 80 worse at every lambda.
REG_GRID = {
    "mllib": [0.1, 0.3, 1.0],
    "half-gridify": [20.0, 60.0, 150.0],
    "full-gridify": [20.0, 60.0, 150.0],
}
ALPHA_GRID = {"mllib": [2.0, 5.0], "half-gridify": [5.0, 10.0], "full-gridify": [5.0, 10.0]}


def hash_split(interactions: DataFrame, fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Deterministic validation split of (user, item) pairs by hash: never randomSplit."""
    bucket = F.abs(F.xxhash64(F.col(USER_IDX), F.col(ITEM_IDX), F.lit(seed))) % 1000
    held = bucket < int(fraction * 1000)
    return interactions.where(~held), interactions.where(held)


def validation_ndcg(
    spark: SparkSession, trained: layouts.Trained, seen: DataFrame, relevant: DataFrame
) -> float:
    item_vectors, known = trained.item_vectors()
    rows = ranking.user_rows(trained.users, seen, relevant)
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
    work: Path,
) -> tuple[ALSConfig, list[dict[str, Any]]]:
    """Fit every trial on a hash split written out before fitting (SPARK-28927); return the
    best configuration (ties: the smaller rank) and every trial's score."""
    fit_part, val_part = hash_split(train, VALIDATION_FRACTION, base.seed)
    fit_part.write.parquet(str(work / "fit"))
    val_part.write.parquet(str(work / "validation"))
    fit_df = spark.read.parquet(str(work / "fit")).cache()
    val_df = spark.read.parquet(str(work / "validation"))
    fit_files = io.parquet_files(work / "fit")
    scored = []
    for trial in trials:
        cfg = replace(base, **trial)
        trained = layouts.fit(spark, fit_df, cfg, files=fit_files)
        ndcg = validation_ndcg(spark, trained, fit_df, val_df)
        scored.append({**trial, "ndcg@10": ndcg, "fit_seconds": round(trained.seconds, 2)})
        log.info("search %s", scored[-1])
    best = max(scored, key=lambda t: (t["ndcg@10"], -t["rank"]))
    fit_df.unpersist()
    return replace(base, **{k: best[k] for k in ("rank", "reg_param", "alpha")}), scored
