"""Per-user ranking metrics on a holdout: every user scored and sorted once for both subsets.

"all" ranks every known item against every held-out stream; "new" leaves out the items the
user streamed in training, from the ranking and from the relevant items. Held-out items the
model does not know (cold) are in neither: ``cold_items`` counts them. Scoring is the
model's (``model.scoring``); the metric definitions are ``metrics``'.
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
from musicrec.model.scoring import ItemSide, spread

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
    """``evaluate``'s work on one partition's batches of users, in numpy: per block of users
    one product with the items (``scoring.ItemSide``), per user one partial sort serving both
    subsets, and the metrics of the whole block from one (lists x positions) hit matrix."""
    side = ItemSide(items, known)
    shared: dict[bytes, metrics.Ranking] = {}  # one vector all of a block has, across blocks
    for pdf in batches:
        vectors = side.vectors(pdf) if len(pdf) else None
        if vectors is not None and (vectors == vectors[0]).all():
            # Every user ranks from one row (the popularity baseline): no product, the whole
            # batch's questions answered over flat arrays (``_shared_block_metrics``).
            frame = _shared_block_metrics(pdf, side, _shared(side, vectors[0], shared), subsets, ks)
            if frame is not None:
                yield frame
            continue
        for block in side.blocks(pdf):
            frame = _block_metrics(block, side, subsets, ks, shared)
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


def _block_metrics(
    block: pd.DataFrame,
    side: ItemSide,
    subsets: tuple[str, ...],
    ks: tuple[int, ...],
    shared: dict[bytes, metrics.Ranking],
) -> pd.DataFrame | None:
    """One block's rows. ``shared``: when every user of a block has one vector (the
    popularity baseline), its ranking (``metrics.SharedRanking``: one whole sort) is kept for
    the next blocks."""
    kmax = max(ks)
    users = side.vectors(block)
    rankings: dict[int, metrics.Ranking] = {}
    head_items, bounds, head_scores = None, np.full(len(users), np.inf), None
    if len(users) and (users == users[0]).all():
        inverse = np.zeros(len(users), dtype=np.int64)
        rankings[0] = _shared(side, users[0], shared)
    else:
        scores, inverse, finite = side.scores(users)
        head = side.head()
        if head is not None:  # no item outside the head scores above a user's bound
            head_items, head_scores = head.items, users @ head.matrix
            bounds = head.bounds(side.user_bounds(users)[0])
    out: dict[str, list] = {USER_IDX: [], "subset": [], "epr_num": [], "epr_den": [], "top": []}
    relevant_lists: list[np.ndarray] = []
    columns = zip(
        block[USER_IDX].tolist(), block["relevant"], block["weights"], block["seen"], strict=True
    )
    for row, (user, relevant, weights, seen) in enumerate(columns):
        # Equal user vectors (the popularity baseline) share one scoring and sort.
        at = int(inverse[row])
        if at not in rankings:
            rankings[at] = metrics.Ranking(
                scores[at],
                int(finite[at]),
                head=head_items,
                bound=float(bounds[row]),
                head_scores=None if head_scores is None else head_scores[row],
            )
        ranking = rankings[at]
        relevant = np.asarray(relevant, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        # Cold items (held out, unknown to the model: not in its training catalogue, or cut by
        # minimum support) cannot be ranked by it: they leave the relevant set and are
        # reported apart (``cold_items``); a user with only cold items has no row.
        keep = relevant < side.n
        keep[keep] = side.known[relevant[keep]]
        relevant, weights = relevant[keep], weights[keep]
        seen = np.asarray(seen if seen is not None else [], dtype=np.int64)
        ranking.prefix(kmax + seen.size)  # the deepest question first: one partial sort
        for subset in subsets:
            exclude = seen if subset == "new" else None
            rel, w = relevant, weights
            if exclude is not None and exclude.size:
                fresh = ~metrics.member(rel, exclude)
                rel, w = rel[fresh], w[fresh]
            if rel.size == 0:
                continue
            pr = ranking.percentile_ranks(rel, exclude)
            out[USER_IDX].append(user)
            out["subset"].append(subset)
            out["epr_num"].append(float((pr * w).sum()))
            out["epr_den"].append(float(w.sum()))
            out["top"].append(ranking.top(kmax, exclude))
            relevant_lists.append(rel)
    return _frame(out, relevant_lists, ks)


def _frame(out: dict[str, list], relevant_lists: list[np.ndarray], ks: tuple[int, ...]) -> Any:
    """The rows of ``out`` (user, subset, expected-percentile-rank parts, top list) with their
    metrics at each k, from one (lists x positions) hit matrix; None for no rows."""
    if not relevant_lists:
        return None
    n_relevant = np.fromiter((r.size for r in relevant_lists), np.int64, len(relevant_lists))
    hits = metrics.hits_of(out["top"], relevant_lists, max(ks))
    frame: dict[str, Any] = {
        USER_IDX: np.asarray(out[USER_IDX], dtype=np.int32),
        "subset": out["subset"],
        "n_relevant": n_relevant.astype(np.int32),
    }
    for k in ks:
        for name, values in metrics.metrics_at(hits, n_relevant, k).items():
            frame[f"{name}@{k}"] = values
    frame["epr_num"], frame["epr_den"] = out["epr_num"], out["epr_den"]
    frame["top"] = [t.astype(np.int32) for t in out["top"]]
    return pd.DataFrame(frame)


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
) -> pd.DataFrame | None:
    """``_block_metrics`` for users who all rank from ``ranking``'s one row, without a loop
    over users: an item's rank is its position in the one order, minus (subset "new") the
    user's seen items placed before it; a "new" top list skips the seen positions (the j-th
    unseen position is j plus the seen positions p_i with p_i - i <= j). Equal rows to the
    per-user path (tests compare them)."""
    kmax, n_users, n = max(ks), len(block), ranking.n
    order, position = ranking.order, ranking.position
    relevant, owner = _flat(block["relevant"], n_users)
    weights = np.concatenate(
        [*(np.asarray(w, dtype=np.float64) for w in block["weights"]), np.empty(0)]
    )
    if weights.size != relevant.size:
        raise ValueError("a user's relevant items and weights differ in length")
    keep = relevant < side.n  # cold items leave, as in ``_block_metrics``
    keep[keep] = side.known[relevant[keep]]
    relevant, owner, weights = relevant[keep], owner[keep], weights[keep]
    span = side.n + kmax + 1  # (user, value) keys: value a position, an item or j < kmax
    # Each user's seen items: unique, in range (``metrics.item_indices``), as (user, item) keys.
    seen, seen_owner = _flat(block["seen"], n_users)
    inside = (seen >= 0) & (seen < side.n)
    seen_keys = np.sort(seen_owner[inside] * span + seen[inside])
    # Sorted, then unique: ``np.unique``'s hashing took 0.2 s for 580k keys.
    seen_keys = (
        seen_keys[np.r_[True, seen_keys[1:] != seen_keys[:-1]]] if seen_keys.size else seen_keys
    )
    seen_owner, seen = np.divmod(seen_keys, span)
    ranked = position[seen] < n  # finite-scored: what the "new" ranking leaves out
    # (user, position) of each user's finite seen items, sorted: positions ascend per user.
    seen_at = np.sort(seen_owner[ranked] * span + position[seen[ranked]])
    n_seen = np.bincount(seen_owner[ranked], minlength=n_users)
    users = block[USER_IDX].to_numpy()
    rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (user, subset index, rel, top)
    parts: dict[str, list] = {"epr_num": [], "epr_den": []}
    for s_index, subset in enumerate(subsets):
        if subset == "new":
            fresh = ~metrics.in_sorted(owner * span + relevant, seen_keys)
            rel, rel_owner, w = relevant[fresh], owner[fresh], weights[fresh]
            place = position[rel]
            # Seen positions before each item's, counted among its user's (sorted keys).
            before = place - (
                np.searchsorted(seen_at, rel_owner * span + place)
                - np.searchsorted(seen_at, rel_owner * span)
            )
            candidates = n - n_seen[rel_owner]
            tops = _unseen_tops(order, seen_at, n_users, n, kmax, span)
        else:
            rel, rel_owner, w = relevant, owner, weights
            before, candidates = position[rel], np.full(rel.size, n)
            tops = [order[:kmax]] * n_users
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = np.where(
                candidates > 1,
                np.where(position[rel] < n, before / (candidates - 1), 1.0),
                0.0,
            )
        counts = np.bincount(rel_owner, minlength=n_users)
        num = np.bincount(rel_owner, pr * w, minlength=n_users)
        den = np.bincount(rel_owner, w, minlength=n_users)
        split = np.split(rel, np.cumsum(counts)[:-1])
        for u in np.flatnonzero(counts):
            rows.append((int(u), s_index, split[u], tops[u]))
            parts["epr_num"].append(float(num[u]))
            parts["epr_den"].append(float(den[u]))
    if not rows:
        return None
    # Rows in the per-user path's order: by user, then subset.
    sequence = sorted(range(len(rows)), key=lambda r: rows[r][:2])
    out: dict[str, list] = {
        USER_IDX: [int(users[rows[r][0]]) for r in sequence],
        "subset": [subsets[rows[r][1]] for r in sequence],
        "epr_num": [parts["epr_num"][r] for r in sequence],
        "epr_den": [parts["epr_den"][r] for r in sequence],
        "top": [rows[r][3] for r in sequence],
    }
    return _frame(out, [rows[r][2] for r in sequence], ks)


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
