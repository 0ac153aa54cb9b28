"""Score users against all items in blocks (numpy inside mapInPandas), excluding seen items.

MLlib's recommendForAllUsers cannot filter items a user already streamed; over-fetching is
unbounded for heavy users. Here each partition multiplies a block of user vectors by the
broadcast item matrix and masks seen items exactly. The same code scores the popularity
baseline: a rank-1 "model" whose item vector is popularity and every user vector is 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.evaluation import metrics
from musicrec.model.prepare import ITEM_IDX, USER_IDX

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


def score_blocks(pdf: pd.DataFrame, n_items: int) -> Iterator[pd.DataFrame]:
    size = max(1, BLOCK_CELLS // max(n_items, 1))
    for start in range(0, len(pdf), size):
        yield pdf.iloc[start : start + size]


def block_scores(block: pd.DataFrame, items: np.ndarray, known: np.ndarray, exclude_seen: bool):
    users = np.stack(block["features"].to_numpy()).astype(np.float32)
    scores = users @ items.T
    scores[:, ~known] = -np.inf
    if exclude_seen:
        for row, seen in enumerate(block["seen"]):
            if seen is not None and len(seen):
                scores[row, np.asarray(seen, dtype=np.int64)] = -np.inf
    return scores


def spread(spark: SparkSession, users: DataFrame) -> DataFrame:
    """``users`` hashed over twice as many partitions as the application has cores.

    Scoring is CPU-bound Python per user, but its input is small in bytes: a factors file read
    as one split, or a join AQE coalesces into one partition, would score every user in one
    task while the other cores idle. A repartition to a fixed number is never coalesced.
    """
    return users.repartition(2 * spark.sparkContext.defaultParallelism, USER_IDX)


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
            for block in score_blocks(pdf, bc_items.value.shape[0]):
                scores = block_scores(block, bc_items.value, bc_known.value, exclude_seen)
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
    return spread(spark, users).mapInPandas(run, schema)
