"""Score users against all items in blocks (numpy inside mapInPandas), excluding seen items.

MLlib's recommendForAllUsers cannot filter items a user already streamed; over-fetching is
unbounded for heavy users. Here each partition multiplies a block of user vectors by the
broadcast item matrix and masks seen items exactly. The same code scores the popularity
baseline: a rank-1 "model" whose item vector is popularity and every user vector is 1.

A top list is exact without scoring every item when item norms are uneven (ALS gives popular
artists long vectors): a score is at most the user's norm times the item's (Cauchy-Schwarz),
so a user whose k-th best among the largest-norm items beats that bound for every other item
is done (``ItemSide.top_lists``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.evaluation import metrics
from musicrec.model.prepare import ITEM_IDX, USER_IDX

# Users x items scored at once: 32 MB of float32, 50 users at 160k items, rank 32. Evaluation
# there (two processes side by side): 0.33 ms a user against 0.42 at 4M cells (the product's
# BLAS call runs faster on more rows; per-block numpy calls are fewer) and 0.52 at 2M.
BLOCK_CELLS = 8_000_000
# Top lists are first taken from this many items of largest norm. At the large size (160k
# artists) 1% of them held every sampled user's top 60; the head's product costs 2.6% of the
# whole one. Not used when the norm just past the head is over HEAD_NORM_SHARE of the largest:
# too few users would be answered (the related items' unit vectors: none).
HEAD_ITEMS = 4096
HEAD_NORM_SHARE = 0.5
# A float32 product may exceed the exact one by ~rank x 6e-8 of |u| |v|; the bound is widened
# by far more than that for any rank in use.
BOUND_SLACK = 1e-4
Columns = dict[str, Any]  # a block's rows, column by column (``frame_of`` joins blocks)


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
        norms = np.linalg.norm(items.astype(np.float64), axis=1) if self.n else np.zeros(0)
        self.max_norm = float(norms.max()) if norms.size else 0.0
        self._norms = norms
        self._head: _Head | None | bool = False  # built on first use
        self.answered_by_head = 0  # users the head alone answered, not scored in full (tests)

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
        _, bad = self.user_bounds(distinct)
        if bad.any():
            scores[bad] = -np.inf
            finite[bad] = 0
        return scores, np.asarray(inverse).reshape(-1), finite

    def head(self) -> _Head | None:
        """The known items of largest norm, or None when a head would not prune."""
        if self._head is False:
            self._head = _Head.of(self.items_t, self._norms, self.known, self.n_known)
        return self._head  # type: ignore[return-value]

    def user_bounds(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each user's norm, whether its products could be non-finite or overflow float32:
        such a user scores -inf everywhere)."""
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.linalg.norm(users.astype(np.float64), axis=1)
            bound = norms * self.max_norm
        return norms, ~np.isfinite(bound) | (bound >= np.finfo(np.float32).max)

    def top_lists(
        self, users: np.ndarray, seen: np.ndarray | list[Any], k: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user, (the k best known items not in its ``seen`` list, best first, ties by
        lower index; their scores): ``metrics.top_k`` of its masked row of ``scores``.

        Scored first against the head (``head``); a user whose k-th best there is above its
        norm times the largest norm outside the head (no outside item can reach it) is done.
        The others are scored against every item, in one product. ``seen``: per user, item
        indices or None.
        """
        lists: list[tuple[np.ndarray, np.ndarray]] = [(_NO_ITEMS, _NO_SCORES)] * len(users)
        norms, bad = self.user_bounds(users)
        pending = np.flatnonzero(~bad)
        head = self.head()
        if head is not None and k > 0 and pending.size:
            answered = np.zeros(len(users), dtype=bool)
            scores = users[pending] @ head.matrix  # each user its own row: masked in place
            bounds = head.bounds(norms[pending])
            for at, u in enumerate(pending):
                row = scores[at]
                n = head.size - head.mask(row, seen[u])
                if n < k:
                    continue
                kth = np.partition(row, head.size - k)[head.size - k]
                if kth > bounds[at]:
                    kept = np.flatnonzero(row >= kth)
                    ids, values = head.items[kept], row[kept]
                    order = np.lexsort((ids, -values))[:k]
                    lists[u] = (ids[order], values[order])
                    answered[u] = True
            self.answered_by_head += int(answered.sum())
            pending = pending[~answered[pending]]
        if pending.size:
            scores, inverse, finite = self.scores(users[pending])
            shared = np.bincount(inverse, minlength=len(scores)) > 1
            for at, u in enumerate(pending):
                row, n = scores[inverse[at]], int(finite[inverse[at]])
                if seen[u] is not None and len(seen[u]) and n:
                    # A row several users share is copied before one user's items are masked.
                    row = row.copy() if shared[inverse[at]] else row
                    n -= mask_seen(row, seen[u], self.known)
                best = metrics.top_k(row, k, n_finite=n)
                lists[u] = (best, row[best])
        return lists


_NO_ITEMS = np.empty(0, dtype=np.int64)
_NO_SCORES = np.empty(0, dtype=np.float32)


class _Head:
    """The ``HEAD_ITEMS`` known items of largest norm: their ids, their (rank, head) factor
    matrix, the largest norm among the other known items, every item's place in the head."""

    def __init__(self, items: np.ndarray, matrix: np.ndarray, rest_norm: float, n: int) -> None:
        self.items, self.matrix, self.rest_norm = items, matrix, rest_norm
        self.size = items.size
        self.position = np.full(n, -1, dtype=np.int64)
        self.position[items] = np.arange(items.size)

    @classmethod
    def of(
        cls, items_t: np.ndarray, norms: np.ndarray, known: np.ndarray, n_known: int
    ) -> _Head | None:
        size = min(HEAD_ITEMS, n_known)
        if size == 0 or size >= n_known:  # the head would hold every known item
            return None
        order = np.argsort(np.where(known, -norms, np.inf), kind="stable")
        rest_norm = float(norms[order[size]])  # a known item: size < n_known
        if rest_norm > HEAD_NORM_SHARE * float(norms[order[0]]):
            return None
        items = order[:size]
        return cls(items, np.ascontiguousarray(items_t[:, items]), rest_norm, norms.size)

    def bounds(self, user_norms: np.ndarray) -> np.ndarray:
        """Per user, what no item outside the head can score above."""
        return user_norms * self.rest_norm * (1 + BOUND_SLACK)

    def mask(self, row: np.ndarray, seen: object) -> int:
        """Set the head scores of ``seen`` items to -inf; returns how many it masked."""
        places = self.position[metrics.item_indices(seen, self.position.size)]
        places = places[places >= 0]
        row[places] = -np.inf
        return int(places.size)


def mask_seen(row: np.ndarray, seen: object, known: np.ndarray) -> int:
    """Set the scores of ``seen`` items (indices; None or empty for none) to -inf in ``row``;
    returns how many finite scores that took away."""
    idx = metrics.item_indices(seen, row.size)
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
    """users: (user_idx, features, seen) -> (user_idx, item_idx, score): per user its best
    ``k`` items, best first, as two arrays (a user without any is left out)."""
    bc_items, bc_known = spark.sparkContext.broadcast(items), spark.sparkContext.broadcast(known)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return recommend_partition(batches, bc_items.value, bc_known.value, k, exclude_seen)

    schema = f"{USER_IDX} int, {ITEM_IDX} array<int>, score array<float>"
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
        parts: list[Columns | None] = []
        for block in side.blocks(pdf):
            seen = block["seen"].to_numpy() if exclude_seen else [None] * len(block)
            lists = side.top_lists(side.vectors(block), seen, k)
            listed = [at for at, (found, _) in enumerate(lists) if found.size]
            parts.append(
                {
                    USER_IDX: block[USER_IDX].to_numpy()[listed].astype(np.int32),
                    ITEM_IDX: [lists[at][0].astype(np.int32) for at in listed],
                    "score": [lists[at][1].astype(np.float32) for at in listed],
                }
                if listed
                else None
            )
        frame = frame_of(parts)
        if frame is not None:
            yield frame


def frame_of(parts: list[Columns | None]) -> pd.DataFrame | None:
    """Blocks' columns as one frame per batch (None for no rows): arrays concatenated, lists
    joined. A pandas frame per 25-user block cost 1.4 ms, 12% of evaluation's time."""
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    joined: Columns = {}
    for name, first in kept[0].items():
        if isinstance(first, np.ndarray):
            joined[name] = np.concatenate([p[name] for p in kept])
        else:
            joined[name] = [x for p in kept for x in p[name]]
    return pd.DataFrame(joined)
