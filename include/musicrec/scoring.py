"""Score users against all items in blocks (numpy inside mapInPandas), excluding seen items.

MLlib's recommendForAllUsers cannot filter items a user already streamed; over-fetching is
unbounded for heavy users. Here each partition multiplies a block of user vectors by the
broadcast item matrix and masks seen items exactly. The same code scores the popularity
baseline: a rank-1 "model" whose item vector is popularity and every user vector is 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec import metrics
from musicrec.prepare import ITEM_IDX, USER_IDX

BLOCK_CELLS = 20_000_000  # users x items scored at once: ~80 MB of float32


def item_matrix(factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Dense (max_idx + 1, rank) matrix from (id, features); rows of unknown ids are NaN."""
    rows = factors.select(F.col("id"), F.col("features")).toPandas()
    n = int(rows["id"].max()) + 1 if len(rows) else 0
    rank = len(rows["features"].iloc[0]) if len(rows) else 1
    matrix = np.full((n, rank), np.nan, dtype=np.float32)
    if len(rows):
        matrix[rows["id"].to_numpy()] = np.stack(rows["features"].to_numpy()).astype(np.float32)
    known = np.asarray(~np.isnan(matrix).any(axis=1))
    return np.nan_to_num(matrix), known


def _blocks(pdf: pd.DataFrame, n_items: int) -> Iterator[pd.DataFrame]:
    size = max(1, BLOCK_CELLS // max(n_items, 1))
    for start in range(0, len(pdf), size):
        yield pdf.iloc[start : start + size]


def _scores(block: pd.DataFrame, items: np.ndarray, known: np.ndarray, exclude_seen: bool):
    users = np.stack(block["features"].to_numpy()).astype(np.float32)
    scores = users @ items.T
    scores[:, ~known] = -np.inf
    if exclude_seen:
        for row, seen in enumerate(block["seen"]):
            if seen is not None and len(seen):
                scores[row, np.asarray(seen, dtype=np.int64)] = -np.inf
    return scores


def recommend(
    spark: SparkSession,
    users: DataFrame,
    items: np.ndarray,
    known: np.ndarray,
    k: int,
    exclude_seen: bool = True,
) -> DataFrame:
    """users: (user_idx, features, seen) -> (user_idx, rank, item_idx, score), rank from 1."""
    bc_items, bc_known = spark.sparkContext.broadcast(items), spark.sparkContext.broadcast(known)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            for block in _blocks(pdf, bc_items.value.shape[0]):
                scores = _scores(block, bc_items.value, bc_known.value, exclude_seen)
                out_u, out_r, out_i, out_s = [], [], [], []
                for row, user in enumerate(block[USER_IDX].to_numpy()):
                    best = metrics.top_k(scores[row], k)
                    out_u.append(np.full(best.size, user))
                    out_r.append(np.arange(1, best.size + 1))
                    out_i.append(best)
                    out_s.append(scores[row, best])
                if out_u:
                    yield pd.DataFrame(
                        {
                            USER_IDX: np.concatenate(out_u).astype(np.int32),
                            "rank": np.concatenate(out_r).astype(np.int32),
                            ITEM_IDX: np.concatenate(out_i).astype(np.int32),
                            "score": np.concatenate(out_s).astype(np.float32),
                        }
                    )

    schema = f"{USER_IDX} int, rank int, {ITEM_IDX} int, score float"
    return users.mapInPandas(run, schema)


SUBSETS = ("all", "new")


def evaluate(
    spark: SparkSession,
    users: DataFrame,
    items: np.ndarray,
    known: np.ndarray,
    subsets: tuple[str, ...] = SUBSETS,
    ks: tuple[int, ...] = metrics.KS,
) -> DataFrame:
    """users: (user_idx, features, seen, relevant, weights) -> one row of metrics per user and
    subset: "all" ranks every known item against every held-out stream; "new" leaves out the
    items the user streamed in training, from the ranking and from the relevant items.

    Each user is scored and sorted once for both subsets. Users whose relevant list is empty
    in a subset yield no row for it: their metrics are undefined.
    """
    unknown = set(subsets) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown evaluation subsets {sorted(unknown)}; expected {SUBSETS}")
    bc_items, bc_known = spark.sparkContext.broadcast(items), spark.sparkContext.broadcast(known)
    kmax = max(ks)
    names = [f"{m}@{k}" for k in ks for m in metrics.NAMES]

    def subset_rows(rec: Any, ranking: metrics.Ranking, n_items: int) -> Iterator[dict[str, Any]]:
        relevant = np.asarray(rec.relevant, dtype=np.int64)
        weights = np.asarray(rec.weights, dtype=np.float64)
        keep = relevant < n_items
        relevant, weights = relevant[keep], weights[keep]
        seen = np.asarray(rec.seen if rec.seen is not None else [], dtype=np.int64)
        for subset in subsets:
            exclude = seen if subset == "new" else None
            rel, w = relevant, weights
            if exclude is not None and exclude.size:
                fresh = ~np.isin(rel, exclude)
                rel, w = rel[fresh], w[fresh]
            if rel.size == 0:
                continue
            ranked = ranking.top(kmax, exclude)
            out: dict[str, Any] = {
                USER_IDX: int(getattr(rec, USER_IDX)),
                "subset": subset,
                "n_relevant": int(rel.size),
            }
            for k in ks:
                for name, value in metrics.user_metrics(ranked, rel, k).items():
                    out[f"{name}@{k}"] = value
            pr = ranking.percentile_ranks(rel, exclude)
            out["epr_num"] = float((pr * w).sum())
            out["epr_den"] = float(w.sum())
            out["top"] = ranked.astype(np.int32).tolist()
            yield out

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            for block in _blocks(pdf, bc_items.value.shape[0]):
                scores = _scores(block, bc_items.value, bc_known.value, exclude_seen=False)
                rows: list[dict[str, Any]] = []
                last: Any = None
                ranking: metrics.Ranking | None = None
                for row, rec in enumerate(block.itertuples(index=False)):
                    # Equal user vectors (the popularity baseline) share one sort.
                    if ranking is None or not np.array_equal(rec.features, last):
                        ranking, last = metrics.Ranking(scores[row]), rec.features
                    rows.extend(subset_rows(rec, ranking, scores.shape[1]))
                if rows:
                    yield pd.DataFrame(rows)

    schema = (
        f"{USER_IDX} int, subset string, n_relevant int, "
        + ", ".join(f"`{n}` double" for n in names)
        + ", epr_num double, epr_den double, top array<int>"
    )
    return users.mapInPandas(run, schema)


def summarize(per_user: DataFrame, n_items: int, ks: tuple[int, ...] = metrics.KS) -> dict:
    """Means over evaluated users (of one subset), expected percentile rank and coverage."""
    names = [f"{m}@{k}" for k in ks for m in metrics.NAMES]
    aggs = [F.avg(F.col(f"`{n}`")).alias(n) for n in names]
    aggs += [
        F.count(F.lit(1)).alias("users"),
        F.sum("epr_num").alias("_n"),
        F.sum("epr_den").alias("_d"),
    ]
    row = per_user.agg(*aggs).first()
    assert row is not None
    out: dict[str, Any] = {n: float(row[n] or 0.0) for n in names}
    out["users"] = int(row["users"])
    out["expected_percentile_rank"] = float(row["_n"] / row["_d"]) if row["_d"] else None
    for k in ks:
        distinct = per_user.select(F.explode(F.slice("top", 1, k)).alias("i")).distinct().count()
        out[f"coverage@{k}"] = distinct / n_items if n_items else 0.0
    return out


def user_rows(user_factors: DataFrame, seen: DataFrame, relevant: DataFrame) -> DataFrame:
    """(user_idx, features, seen, relevant, weights) for users with relevant items."""
    seen_lists = seen.groupBy(USER_IDX).agg(F.collect_list(ITEM_IDX).alias("seen"))
    rel = relevant.groupBy(USER_IDX).agg(
        F.collect_list(ITEM_IDX).alias("relevant"),
        F.collect_list(F.col("streams").cast("double")).alias("weights"),
    )
    factors = user_factors.select(F.col("id").alias(USER_IDX), "features")
    return factors.join(rel, USER_IDX).join(seen_lists, USER_IDX, "left")
