"""Per-user ranking metrics on a holdout: every user scored and sorted once for both subsets.

"all" ranks every known item against every held-out stream; "new" leaves out the items the
user streamed in training, from the ranking and from the relevant items. Held-out items the
model does not know (cold) are in neither: ``cold_items`` counts them. Scoring is the
model's (``model.scoring``); the metric definitions are ``metrics``'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from musicrec.evaluation import metrics
from musicrec.model.prepare import ITEM_IDX, USER_IDX
from musicrec.model.scoring import Columns, ItemSide, frame_of, spread

SUBSETS = ("all", "new")
# A subset's answers over a block's flat relevant items: which it ranks (not seen, for "new"),
# their percentile ranks, and a user's top list by its block row.
Answer = tuple[np.ndarray, np.ndarray, Callable[[int], np.ndarray]]


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

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_partition(batches, bc_items.value, bc_known.value, subsets, ks)

    names = [f"{m}@{k}" for k in ks for m in metrics.NAMES]
    schema = (
        f"{USER_IDX} int, subset string, n_relevant int, "
        + ", ".join(f"`{n}` double" for n in names)
        + ", epr_num double, epr_den double, top array<int>"
    )
    return spread(spark, users).mapInPandas(run, schema)


def score_partition(
    batches: Iterator[pd.DataFrame],
    items: np.ndarray,
    known: np.ndarray,
    subsets: tuple[str, ...] = SUBSETS,
    ks: tuple[int, ...] = metrics.KS,
) -> Iterator[pd.DataFrame]:
    """``evaluate``'s work on one partition's batches of users, in numpy, a block of users at
    a time (``scoring.ItemSide``): the head's product, one product with every item for the
    users the head does not answer, both subsets' ranks and top lists over flat arrays, and
    the metrics of the whole block from one (lists x positions) hit matrix. One frame per
    batch (``scoring.frame_of``)."""
    side = ItemSide(items, known)
    shared: dict[bytes, metrics.Ranking] = {}  # one vector all of a block has, across blocks
    for pdf in batches:
        vectors = side.vectors(pdf) if len(pdf) else None
        if vectors is not None and (vectors == vectors[0]).all():
            # Every user ranks from one row (the popularity baseline): no product, the whole
            # batch's questions answered over flat arrays (``_shared_block_metrics``).
            parts = [
                _shared_block_metrics(pdf, side, _shared(side, vectors[0], shared), subsets, ks)
            ]
        else:
            parts = [_block_metrics(block, side, subsets, ks, shared) for block in side.blocks(pdf)]
        frame = frame_of(parts)
        if frame is not None:
            yield frame


def _shared(side: ItemSide, vector: np.ndarray, shared: dict[bytes, metrics.Ranking]) -> Any:
    """The ranking of ``vector``'s row, sorted whole once (``metrics.SharedRanking``) and kept
    for the next batches."""
    key = vector.tobytes()
    if key not in shared:
        shared.clear()
        scores, _, finite = side.scores(vector[None, :])
        shared[key] = metrics.SharedRanking(scores[0], n_finite=int(finite[0]))
    return shared[key]


class _Lists:
    """A block's per-user lists as flat arrays: the relevant items the model knows (cold ones
    leave, as ``cold_items`` reports) with their weights and owners (block rows 0..n-1, in
    order), and each user's seen items (unique, in range: ``metrics.item_indices``) as sorted
    (owner, item) keys."""

    def __init__(self, block: pd.DataFrame, side: ItemSide, kmax: int) -> None:
        n_users = len(block)
        relevant, owner = _flat(block["relevant"], n_users)
        weights = np.concatenate(
            [*(np.asarray(w, dtype=np.float64) for w in block["weights"]), np.empty(0)]
        )
        if weights.size != relevant.size:
            raise ValueError("a user's relevant items and weights differ in length")
        keep = relevant < side.n
        keep[keep] = side.known[relevant[keep]]
        self.relevant, self.owner, self.weights = relevant[keep], owner[keep], weights[keep]
        self.span = side.n + kmax + 1  # (user, value) keys: an item, a position or j < kmax
        seen, seen_owner = _flat(block["seen"], n_users)
        inside = (seen >= 0) & (seen < side.n)
        # Sorted, then unique: ``np.unique``'s hashing took 0.2 s for 580k keys.
        keys = np.sort(seen_owner[inside] * self.span + seen[inside])
        self.seen_keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
        self.seen_owner, self.seen = np.divmod(self.seen_keys, self.span)
        self.seen_start = np.searchsorted(self.seen_owner, np.arange(n_users + 1))
        self.start = np.searchsorted(self.owner, np.arange(n_users + 1))

    def fresh(self) -> np.ndarray:
        """Which relevant items their user has not seen (subset "new")."""
        return ~metrics.in_sorted(self.owner * self.span + self.relevant, self.seen_keys)

    def seen_ahead(self, seen_scores: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Per relevant item (score ``s``), its user's seen items ahead of it: scored higher,
        or equal at a lower index. ``seen_scores``: each seen item's score (-inf for those
        the "new" ranking does not hold)."""
        counts = np.diff(self.seen_start)[self.owner]
        pair = np.repeat(np.arange(self.relevant.size), counts)
        first = np.repeat(self.seen_start[self.owner] - np.cumsum(counts) + counts, counts)
        at = first + np.arange(pair.size)
        es, e = seen_scores[at], self.seen[at]
        ahead = (es > s[pair]) | ((es == s[pair]) & (e < self.relevant[pair]))
        return np.bincount(pair, ahead, minlength=self.relevant.size).astype(np.int64)


def _head_tops(
    head: Any, scores: np.ndarray, bounds: np.ndarray, k: int
) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Per user (a row of the head's ``scores``, seen items masked as the subset asks), its
    k best items from the head alone when k of them beat its bound (no other item can be
    among them), best first, ties by lower index; else None. And which users that was.
    Selected among the items above the bound (about 300 of the 4,096 at the large size)."""
    tops: list[np.ndarray | None] = [None] * len(scores)
    if k <= 0:
        return tops, np.zeros(len(scores), dtype=bool)
    above = scores > bounds[:, None]
    found = np.count_nonzero(above, axis=1) >= k
    for u in np.flatnonzero(found):
        kept = np.flatnonzero(above[u])
        values = scores[u, kept]
        kth = np.partition(values, values.size - k)[values.size - k]
        kept = kept[values >= kth]
        ids, values = head.items[kept], scores[u, kept]
        tops[u] = ids[np.lexsort((ids, -values))][:k]
    return tops, found


def _block_metrics(
    block: pd.DataFrame,
    side: ItemSide,
    subsets: tuple[str, ...],
    ks: tuple[int, ...],
    shared: dict[bytes, metrics.Ranking],
) -> Columns | None:
    """One block's rows, over flat arrays of the block's (user, item) pairs.

    The items of largest norm (``ItemSide.head``) are scored first, in a product of their
    own: a held-out item scored above its user's bound (no item outside the head reaches it)
    is ranked among the head's items, and a top list whose last score beats the bound is the
    head's. Users with a question the head cannot answer are scored against every item, in
    one product; the others are not. ``shared``: when every user of the block has one vector
    (the popularity baseline), ``_shared_block_metrics`` answers them from one sort, kept for
    the next blocks.
    """
    users = side.vectors(block)
    if len(users) and (users == users[0]).all():
        return _shared_block_metrics(block, side, _shared(side, users[0], shared), subsets, ks)
    kmax, n_users = max(ks), len(block)
    lists = _Lists(block, side, kmax)
    rel, owner, seen, seen_owner = lists.relevant, lists.owner, lists.seen, lists.seen_owner
    norms, bad = side.user_bounds(users)
    n = np.where(bad, 0, side.n_known)  # a user whose products overflow ranks nothing
    ranked = side.known[seen] & ~bad[seen_owner]  # seen items the "new" ranking leaves out
    n_seen = np.bincount(seen_owner[ranked], minlength=n_users)
    full = ~bad  # users scored against every item
    head = side.head()
    head_top: dict[str, list] = {}
    if head is not None:
        head_scores = users @ head.matrix
        bounds = head.bounds(norms)
        place, seen_place = head.position[rel], head.position[seen]
        rel_head = np.where(place >= 0, head_scores[owner, np.maximum(place, 0)], -np.inf)
        answered = np.bincount(owner, ~(rel_head > bounds[owner]), minlength=n_users) == 0
        for subset in subsets:
            masked = head_scores
            if subset == "new":
                masked = head_scores.copy()
                masked[seen_owner[seen_place >= 0], seen_place[seen_place >= 0]] = -np.inf
            head_top[subset], found = _head_tops(head, masked, bounds, kmax)
            answered &= found
        full &= ~answered
        side.answered_by_head += int(np.count_nonzero(answered & ~bad))
    rows = np.flatnonzero(full)
    at = np.full(n_users, -1)
    at[rows] = np.arange(rows.size)
    scores = users[rows] @ side.items_t
    if side.unknown.size:
        scores[:, side.unknown] = -np.inf
    # Each pair's score, from the user's whole row, else from the head's product (every
    # relevant item of a user without a whole row is in the head, above the bound).
    s = np.full(rel.size, -np.inf, dtype=np.float32)
    whole = full[owner]
    s[whole] = scores[at[owner[whole]], rel[whole]]
    # Seen items' scores where the "new" ranking holds them (-inf: never ahead).
    seen_scores = np.full(seen.size, -np.inf, dtype=np.float32)
    seen_whole = full[seen_owner] & ranked
    seen_scores[seen_whole] = scores[at[seen_owner[seen_whole]], seen[seen_whole]]
    by_head = np.zeros(rel.size, dtype=bool)
    if head is not None:
        s[~whole] = rel_head[~whole]
        by_head = s > bounds[owner]
        in_head = ~full[seen_owner] & ranked & (seen_place >= 0)
        seen_scores[in_head] = head_scores[seen_owner[in_head], seen_place[in_head]]
    # Items ahead of each pair: higher scores, and equal ones at a lower index.
    ahead = np.zeros(rel.size, dtype=np.int64)
    if head is not None and by_head.any():  # among the head's items only (not the item)
        p = np.flatnonzero(by_head)
        values, ids, v = head_scores[owner[p]], head.items[None, :], s[p, None]
        ahead[p] = ((values > v) & (ids != rel[p, None])).sum(axis=1)
        ahead[p] += ((values == v) & (ids < rel[p, None])).sum(axis=1)
    for q in np.flatnonzero(whole & ~by_head & ~bad[owner]):  # one pass each over the row
        row, i, v = scores[at[owner[q]]], rel[q], s[q]
        ahead[q] = np.count_nonzero(row[:i] >= v) + np.count_nonzero(row[i + 1 :] > v)

    def top_of(subset: str) -> Callable[[int], np.ndarray]:
        def top(u: int) -> np.ndarray:
            found = head_top[subset][u] if head_top else None
            if found is not None or not n[u]:
                return found if found is not None else np.empty(0, dtype=np.int64)
            row, finite = scores[at[u]], int(n[u])
            if subset == "new" and n_seen[u]:
                row = row.copy()
                row[seen[lists.seen_start[u] : lists.seen_start[u + 1]]] = -np.inf
                finite -= int(n_seen[u])
            return metrics.top_k(row, kmax, n_finite=finite)

        return top

    answers: dict[str, Answer] = {}
    for subset in subsets:
        if subset == "new":
            fresh = lists.fresh()
            before = ahead - lists.seen_ahead(seen_scores, s)
            candidates = n[owner] - n_seen[owner]
        else:
            fresh, before, candidates = np.ones(rel.size, dtype=bool), ahead, n[owner]
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = np.where(candidates > 1, before / (candidates - 1), 0.0)
        answers[subset] = (fresh, pr, top_of(subset))
    return _rows(block, lists, subsets, answers, ks)


def _columns(
    out: dict[str, list], relevant_lists: list[np.ndarray], ks: tuple[int, ...]
) -> Columns | None:
    """The rows of ``out`` (user, subset, expected-percentile-rank parts, top list) with their
    metrics at each k, from one (lists x positions) hit matrix; None for no rows."""
    if not relevant_lists:
        return None
    n_relevant = np.fromiter((r.size for r in relevant_lists), np.int64, len(relevant_lists))
    hits = metrics.hits_of(out["top"], relevant_lists, max(ks))
    columns: Columns = {
        USER_IDX: np.asarray(out[USER_IDX], dtype=np.int32),
        "subset": out["subset"],
        "n_relevant": n_relevant.astype(np.int32),
    }
    for k in ks:
        for name, values in metrics.metrics_at(hits, n_relevant, k).items():
            columns[f"{name}@{k}"] = values
    columns["epr_num"], columns["epr_den"] = out["epr_num"], out["epr_den"]
    columns["top"] = [t.astype(np.int32) for t in out["top"]]
    return columns


def _flat(lists: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user lists (None for empty) as (values, owner: each value's user 0..n-1)."""
    arrays = [np.asarray(x if x is not None else (), dtype=np.int64) for x in lists]
    lengths = np.fromiter((a.size for a in arrays), np.int64, n)
    return np.concatenate([*arrays, np.empty(0, np.int64)]), np.repeat(np.arange(n), lengths)


def _shared_block_metrics(
    block: pd.DataFrame,
    side: ItemSide,
    ranking: metrics.SharedRanking,
    subsets: tuple[str, ...],
    ks: tuple[int, ...],
) -> Columns | None:
    """``_block_metrics`` for users who all rank from ``ranking``'s one row, without a loop
    over users: an item's rank is its position in the one order, minus (subset "new") the
    user's seen items placed before it; a "new" top list skips the seen positions (the j-th
    unseen position is j plus the seen positions p_i with p_i - i <= j). Equal rows to a
    per-user ranking (tests compare them)."""
    kmax, n_users, n = max(ks), len(block), ranking.n
    order, position = ranking.order, ranking.position
    lists = _Lists(block, side, kmax)
    rel, owner, seen, span = lists.relevant, lists.owner, lists.seen, lists.span
    ranked = position[seen] < n  # finite-scored: what the "new" ranking leaves out
    # (user, position) of each user's finite seen items, sorted: positions ascend per user.
    seen_at = np.sort(lists.seen_owner[ranked] * span + position[seen[ranked]])
    n_seen = np.bincount(lists.seen_owner[ranked], minlength=n_users)
    place = position[rel]
    answers: dict[str, Answer] = {}
    for subset in subsets:
        if subset == "new":
            fresh = lists.fresh()
            # Seen positions before each item's, counted among its user's (sorted keys).
            before = place - (
                np.searchsorted(seen_at, owner * span + place)
                - np.searchsorted(seen_at, owner * span)
            )
            candidates = n - n_seen[owner]
            tops = _unseen_tops(order, seen_at, n_users, n, kmax, span)
        else:
            fresh, before, candidates = np.ones(rel.size, bool), place, np.full(rel.size, n)
            tops = [order[:kmax]] * n_users
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = np.where(candidates > 1, np.where(place < n, before / (candidates - 1), 1.0), 0.0)
        answers[subset] = (fresh, pr, _listed(tops))
    return _rows(block, lists, subsets, answers, ks)


def _listed(tops: list[np.ndarray]) -> Callable[[int], np.ndarray]:
    return lambda u: tops[u]


def _rows(
    block: pd.DataFrame,
    lists: _Lists,
    subsets: tuple[str, ...],
    answers: dict[str, Answer],
    ks: tuple[int, ...],
) -> Columns | None:
    """The block's rows, by user then subset, from each subset's answers: which relevant
    items it ranks (``fresh``), their percentile ranks, and a user's top list by its block
    row (asked only of users with a row). A user with no relevant item in a subset has no
    row for it."""
    n_users = len(block)
    user_of, subset_of, num, den, rel_lists, top_lists = [], [], [], [], [], []
    for at, subset in enumerate(subsets):
        fresh, pr, top = answers[subset]
        rel, owner, w = lists.relevant[fresh], lists.owner[fresh], lists.weights[fresh]
        counts = np.bincount(owner, minlength=n_users)
        has = np.flatnonzero(counts)
        user_of.append(has)
        subset_of.append(np.full(has.size, at))
        num.append(np.bincount(owner, pr[fresh] * w, minlength=n_users)[has])
        den.append(np.bincount(owner, w, minlength=n_users)[has])
        ends = np.cumsum(counts)
        rel_lists += [rel[ends[u] - counts[u] : ends[u]] for u in has.tolist()]
        top_lists += [top(int(u)) for u in has]
    users, subset_at = np.concatenate(user_of), np.concatenate(subset_of)
    order = np.lexsort((subset_at, users))
    ids = block[USER_IDX].to_numpy()
    out: dict[str, list] = {
        USER_IDX: ids[users[order]].tolist(),
        "subset": [subsets[i] for i in subset_at[order]],
        "epr_num": np.concatenate(num)[order].tolist(),
        "epr_den": np.concatenate(den)[order].tolist(),
        "top": [top_lists[i] for i in order],
    }
    return _columns(out, [rel_lists[i] for i in order], ks)


def _unseen_tops(
    order: np.ndarray,
    seen_at: np.ndarray,
    n_users: int,
    n: int,
    kmax: int,
    span: int,
) -> list[np.ndarray]:
    """Per user the first ``kmax`` items of ``order`` not seen by it. ``seen_at``: sorted
    (user * span + position) keys of its seen finite items. The j-th unseen position is j
    plus the number of seen positions p_i (the i-th of its user's, from 0) with p_i - i <= j."""
    owner, place = np.divmod(seen_at, span)
    rank_in_user = np.arange(seen_at.size) - np.searchsorted(seen_at, owner * span)
    gaps = owner * span + (place - rank_in_user)  # sorted: p_i - i ascends per user
    j = np.arange(kmax)
    queries = np.arange(n_users)[:, None] * span + j[None, :]
    skipped = (
        np.searchsorted(gaps, queries, side="right")
        - np.searchsorted(gaps, np.arange(n_users) * span)[:, None]
    )
    places = j[None, :] + skipped
    return [order[row[row < n]] for row in places]


def summarize_subsets(
    per_user: DataFrame,
    n_items: int,
    ks: tuple[int, ...] = metrics.KS,
    subsets: tuple[str, ...] = SUBSETS,
) -> dict[str, dict]:
    """Per subset: means over its evaluated users, expected percentile rank and coverage.

    Two aggregations over ``per_user`` whatever the number of subsets and cut-offs: the means
    grouped by subset, and coverage@k from each (subset, item)'s best position in a top list.
    """
    names = [f"{m}@{k}" for k in ks for m in metrics.NAMES]
    aggs = [F.avg(F.col(f"`{n}`")).alias(n) for n in names]
    aggs += [
        F.count(F.lit(1)).alias("users"),
        F.sum("epr_num").alias("_n"),
        F.sum("epr_den").alias("_d"),
    ]
    means = {r["subset"]: r for r in per_user.groupBy("subset").agg(*aggs).collect()}
    best = (
        per_user.select("subset", F.posexplode(F.slice("top", 1, max(ks))).alias("pos", "i"))
        .groupBy("subset", "i")
        .agg(F.min("pos").alias("pos"))
    )
    covered = best.groupBy("subset").agg(
        *[F.count(F.when(F.col("pos") < k, 1)).alias(f"k{k}") for k in ks]
    )
    coverage = {r["subset"]: r for r in covered.collect()}
    out: dict[str, dict] = {}
    for subset in subsets:
        row, cov = means.get(subset), coverage.get(subset)
        summary: dict[str, Any] = {n: float(row[n] or 0.0) if row else 0.0 for n in names}
        summary["users"] = int(row["users"]) if row else 0
        summary["expected_percentile_rank"] = (
            float(row["_n"] / row["_d"]) if row and row["_d"] else None
        )
        for k in ks:
            distinct = int(cov[f"k{k}"]) if cov else 0
            summary[f"coverage@{k}"] = distinct / n_items if n_items else 0.0
        out[subset] = summary
    return out


def summarize(per_user: DataFrame, n_items: int, ks: tuple[int, ...] = metrics.KS) -> dict:
    """``summarize_subsets`` of all of ``per_user`` taken as one subset."""
    return summarize_subsets(per_user.withColumn("subset", F.lit("")), n_items, ks, ("",))[""]


def user_lists(seen: DataFrame, relevant: DataFrame) -> DataFrame:
    """(user_idx, relevant, weights, seen) for users with relevant items: what every model
    scored on the same holdout shares (cache it when scoring several)."""
    seen_lists = seen.groupBy(USER_IDX).agg(F.collect_list(ITEM_IDX).alias("seen"))
    rel = relevant.groupBy(USER_IDX).agg(
        F.collect_list(ITEM_IDX).alias("relevant"),
        F.collect_list(F.col("streams").cast("double")).alias("weights"),
    )
    return rel.join(seen_lists, USER_IDX, "left")


def with_factors(user_factors: DataFrame, lists: DataFrame) -> DataFrame:
    """(user_idx, features, relevant, weights, seen): ``user_lists`` joined to a model's users."""
    factors = user_factors.select(F.col("id").alias(USER_IDX), "features")
    return factors.join(lists, USER_IDX)


def user_rows(user_factors: DataFrame, seen: DataFrame, relevant: DataFrame) -> DataFrame:
    """(user_idx, features, seen, relevant, weights) for users with relevant items."""
    return with_factors(user_factors, user_lists(seen, relevant))


def cold_items(spark: SparkSession, known: np.ndarray, holdout: DataFrame) -> dict[str, Any]:
    """Held-out pairs whose item the model cannot know, their share of the holdout, and the
    users left with nothing but such items (they get no metrics row)."""
    catalogue = spark.createDataFrame(
        pd.DataFrame({ITEM_IDX: np.flatnonzero(known).astype(np.int32)}), f"{ITEM_IDX} int"
    )
    flagged = holdout.select(USER_IDX, ITEM_IDX).join(
        catalogue.withColumn("_known", F.lit(True)), ITEM_IDX, "left"
    )
    per_user = flagged.groupBy(USER_IDX).agg(
        F.count(F.lit(1)).alias("pairs"),
        F.sum(F.when(F.col("_known").isNull(), 1).otherwise(0)).alias("cold"),
    )
    row = per_user.agg(
        F.sum("pairs").alias("pairs"),
        F.sum("cold").alias("cold"),
        F.count(F.when(F.col("cold") > 0, 1)).alias("users_with_cold"),
        F.count(F.when(F.col("cold") == F.col("pairs"), 1)).alias("users_only_cold"),
    ).first()
    pairs = int(row["pairs"] or 0) if row else 0
    cold = int(row["cold"] or 0) if row else 0
    return {
        "holdout_pairs": pairs,
        "cold_pairs": cold,
        "cold_share": round(cold / pairs, 6) if pairs else 0.0,
        "users_with_cold": int(row["users_with_cold"] or 0) if row else 0,
        "users_only_cold": int(row["users_only_cold"] or 0) if row else 0,
    }


def score_users(
    spark: SparkSession, user_factors: DataFrame, items: Any, known: Any, lists: DataFrame
) -> dict[str, dict]:
    """Summaries of the "all" and "new" subsets from one scoring pass over the users of
    ``lists`` (``user_lists``)."""
    per_user = evaluate(spark, with_factors(user_factors, lists), items, known).cache()
    out = summarize_subsets(per_user, int(known.sum()))
    per_user.unpersist()
    return out


def score_model(
    spark: SparkSession,
    user_factors: DataFrame,
    items: Any,
    known: Any,
    train: DataFrame,
    holdout: DataFrame,
) -> dict[str, dict]:
    """Summaries of the "all" and "new" subsets from one scoring pass over the users."""
    return score_users(spark, user_factors, items, known, user_lists(train, holdout))
