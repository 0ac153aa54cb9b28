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

# Users x items scored at once: 16 MB of float32. Against 20M cells (80 MB) a block's product
# and its partial sorts stay near the cache: 0.16 against 0.37 ms a user at 160k items, rank 32.
BLOCK_CELLS = 4_000_000


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


class ItemSide:
    """The item side of scoring, prepared once per partition: the factors transposed into
    one C-contiguous (rank, items) matrix (the product's fast layout: half the time of
    ``items.T``), the unknown items and how many are known.

    Every score it returns is finite or -inf, so a ranking can trust ``n_known`` finite
    entries (minus those a caller masks) without a pass over the row to count them.
    """

    def __init__(self, items: np.ndarray, known: np.ndarray) -> None:
        self.n = items.shape[0]
        self.items_t = np.ascontiguousarray(items.T, dtype=np.float32)
        self.known = np.asarray(known, dtype=bool)
        self.unknown = np.flatnonzero(~self.known)
        self.n_known = int(self.known.sum())
        norms = np.linalg.norm(items.astype(np.float64), axis=1) if self.n else np.zeros(1)
        self.max_norm = float(norms.max()) if norms.size else 0.0

    @staticmethod
    def vectors(block: pd.DataFrame) -> np.ndarray:
        return np.stack(block["features"].to_numpy()).astype(np.float32)

    def block_size(self) -> int:
        return max(1, BLOCK_CELLS // max(self.n, 1))

    def blocks(self, pdf: pd.DataFrame) -> Iterator[pd.DataFrame]:
        size = self.block_size()
        for start in range(0, len(pdf), size):
            yield pdf.iloc[start : start + size]

    def scores(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores of the distinct user vectors, each user's row in them, each row's count of
        finite scores). Equal vectors (the popularity baseline's) are scored once; a vector
        that is not finite, or whose products could overflow float32, scores -inf everywhere.
        ``users``: (users, rank) float32, e.g. ``vectors(block)``.
        """
        distinct, inverse = np.unique(users, axis=0, return_inverse=True)
        if len(distinct) == len(users):
            distinct, inverse = users, np.arange(len(users))
        scores = distinct @ self.items_t
        if self.unknown.size:
            scores[:, self.unknown] = -np.inf
        finite = np.full(len(distinct), self.n_known, dtype=np.int64)
        with np.errstate(over="ignore", invalid="ignore"):
            bound = np.linalg.norm(distinct.astype(np.float64), axis=1) * self.max_norm
        bad = ~np.isfinite(bound) | (bound >= np.finfo(np.float32).max)
        if bad.any():
            scores[bad] = -np.inf
            finite[bad] = 0
        return scores, np.asarray(inverse).reshape(-1), finite


def mask_seen(row: np.ndarray, seen: object, known: np.ndarray) -> int:
    """Set the scores of ``seen`` items (indices; None or empty for none) to -inf in ``row``;
    returns how many finite scores that took away."""
    if seen is None or len(seen) == 0:  # type: ignore[arg-type]
        return 0
    idx = np.unique(np.asarray(seen, dtype=np.int64))
    idx = idx[(idx >= 0) & (idx < row.size)]
    taken = int(np.count_nonzero(known[idx]))
    row[idx] = -np.inf
    return taken


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
        return recommend_partition(batches, bc_items.value, bc_known.value, k, exclude_seen)

    schema = f"{USER_IDX} int, rank int, {ITEM_IDX} int, score float"
    return spread(spark, users).mapInPandas(run, schema)


def recommend_partition(
    batches: Iterator[pd.DataFrame],
    items: np.ndarray,
    known: np.ndarray,
    k: int,
    exclude_seen: bool = True,
) -> Iterator[pd.DataFrame]:
    """``recommend``'s work on one partition's batches of (user_idx, features[, seen])."""
    side = ItemSide(items, known)
    for pdf in batches:
        for block in side.blocks(pdf):
            scores, inverse, finite = side.scores(side.vectors(block))
            seen = block["seen"].to_numpy() if exclude_seen else [None] * len(block)
            # A row several users rank from (equal vectors: the popularity baseline) is copied
            # before a user's seen items are masked in it; a user's own row is masked in place
            # (a copy of 160k scores cost 10% of a user's time at the large size).
            shared = np.bincount(inverse, minlength=len(scores)) > 1
            out_u, out_r, out_i, out_s = [], [], [], []
            for row, user in enumerate(block[USER_IDX].to_numpy()):
                own = scores[inverse[row]]
                n = int(finite[inverse[row]])
                if exclude_seen and seen[row] is not None and len(seen[row]):
                    if shared[inverse[row]]:
                        own = own.copy()
                    n -= mask_seen(own, seen[row], side.known) if n else 0
                best = metrics.top_k(own, k, n_finite=n)
                out_u.append(np.full(best.size, user))
                out_r.append(np.arange(1, best.size + 1))
                out_i.append(best)
                out_s.append(own[best])
            if out_u:
                yield pd.DataFrame(
                    {
                        USER_IDX: np.concatenate(out_u).astype(np.int32),
                        "rank": np.concatenate(out_r).astype(np.int32),
                        ITEM_IDX: np.concatenate(out_i).astype(np.int32),
                        "score": np.concatenate(out_s).astype(np.float32),
                    }
                )
