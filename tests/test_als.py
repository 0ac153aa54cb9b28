"""Known-answer ALS and training safeguards."""

from __future__ import annotations

import pytest
from musicrec import als, scoring
from musicrec.config import ALSConfig
from musicrec.exceptions import ConfigError
from pyspark.sql import functions as F

pytestmark = pytest.mark.unit


def two_groups(spark):
    """Users 0-19 stream items 0-9, users 20-39 items 10-19; each misses one of their own."""
    rows, held = [], {}
    for u in range(40):
        group = range(0, 10) if u < 20 else range(10, 20)
        held[u] = group[u % 10]
        rows += [(u, i, 3.0) for i in group if i != held[u]]
    return spark.createDataFrame(rows, "user_idx int, item_idx int, rating float"), held


def test_known_answer_held_out_item_ranks_in_top_3(spark):
    data, held = two_groups(spark)
    model, _ = als.fit(spark, data, ALSConfig(rank=4, reg_param=0.01, alpha=10, max_iter=10))
    items, known = scoring.item_matrix(model.itemFactors)
    seen = data.groupBy("user_idx").agg(F.collect_list("item_idx").alias("seen"))
    users = model.userFactors.select(F.col("id").alias("user_idx"), "features").join(
        seen, "user_idx"
    )
    recs = scoring.recommend(spark, users, items, known, k=3).collect()
    top3 = {}
    for r in recs:
        top3.setdefault(r.user_idx, []).append(r.item_idx)
    assert all(held[u] in top3[u] for u in held), {u: (held[u], top3[u]) for u in held}


def test_same_seed_same_factors(spark):
    data, _ = two_groups(spark)
    cfg = ALSConfig(rank=3, max_iter=3, seed=7)
    a, _ = als.fit(spark, data, cfg)
    b, _ = als.fit(spark, data, cfg)
    fa = sorted((r.id, r.features) for r in a.itemFactors.collect())
    fb = sorted((r.id, r.features) for r in b.itemFactors.collect())
    assert fa == fb


def test_many_iterations_do_not_overflow_lineage(spark):
    data, _ = two_groups(spark)
    model, _ = als.fit(spark, data, ALSConfig(rank=2, max_iter=35, checkpoint_interval=5))
    assert model.userFactors.count() == 40


def test_training_refuses_without_checkpoint_dir():
    with pytest.raises(ConfigError, match="checkpoint"):
        als.require_checkpoint_dir(None)


def test_hash_split_is_deterministic_and_disjoint(spark):
    data, _ = two_groups(spark)
    fit1, val1 = als.hash_split(data, 0.2, seed=1)
    fit2, val2 = als.hash_split(data, 0.2, seed=1)
    assert sorted(val1.collect()) == sorted(val2.collect())
    assert fit1.count() + val1.count() == data.count()
    assert fit1.join(val1, ["user_idx", "item_idx"]).count() == 0
    assert sorted(fit1.collect()) == sorted(fit2.collect())


def test_one_evaluation_pass_matches_per_subset_brute_force(spark):
    """Both subsets from one scoring pass equal masking-and-ranking each subset separately."""
    import numpy as np
    from musicrec import metrics

    rng = np.random.default_rng(3)
    n_users, n_items, rank = 30, 40, 3
    items = rng.standard_normal((n_items, rank)).astype(np.float32)
    known = rng.random(n_items) > 0.1
    factors = rng.standard_normal((n_users, rank)).astype(np.float32)
    factors[::7] = factors[0]  # equal user vectors share one sort: must not leak between users
    seen = {u: rng.choice(n_items, 8, replace=False).tolist() for u in range(n_users)}
    relevant = {u: rng.choice(n_items, 4, replace=False).tolist() for u in range(n_users)}
    relevant[5] = seen[5][:4]  # nothing new for user 5: no "new" row
    rows = [
        (u, factors[u].tolist(), seen[u], relevant[u], [float(i + 1) for i in range(4)])
        for u in range(n_users)
    ]
    users = spark.createDataFrame(
        rows,
        "user_idx int, features array<float>, seen array<int>, relevant array<int>, "
        "weights array<double>",
    )
    got = {
        (r.user_idx, r.subset): r
        for r in scoring.evaluate(spark, users.repartition(3), items, known).collect()
    }
    assert (5, "new") not in got and (5, "all") in got
    for u in range(n_users):
        scores = items @ factors[u]
        scores[~known] = -np.inf
        for subset in scoring.SUBSETS:
            rel = np.array(relevant[u])
            w = np.arange(1.0, 5.0)
            if subset == "new":
                scores = scores.copy()
                scores[seen[u]] = -np.inf
                keep = ~np.isin(rel, seen[u])
                rel, w = rel[keep], w[keep]
            if rel.size == 0:
                continue
            order = sorted(np.flatnonzero(np.isfinite(scores)), key=lambda i: (-scores[i], i))
            row = got[(u, subset)]
            assert row.top == [int(i) for i in order[:50]]
            for k in metrics.KS:
                expected = metrics.user_metrics(np.array(order), rel, k)
                assert row[f"ndcg@{k}"] == pytest.approx(expected["ndcg"])
                assert row[f"map@{k}"] == pytest.approx(expected["map"])
            position = {item: p / (len(order) - 1) for p, item in enumerate(order)}
            pr = np.array([position.get(i, 1.0) for i in rel])
            assert row.epr_num == pytest.approx(float((pr * w).sum()), rel=1e-6)
