"""Per-user ranking on a holdout: one scoring pass for both subsets, checked by brute force."""

from __future__ import annotations

import pytest
from musicrec.evaluation import ranking

pytestmark = pytest.mark.unit


def test_one_evaluation_pass_matches_per_subset_brute_force(spark):
    """Both subsets from one scoring pass equal masking-and-ranking each subset separately."""
    import numpy as np
    from musicrec.evaluation import metrics

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
        for r in ranking.evaluate(spark, users.repartition(3), items, known).collect()
    }
    assert (5, "new") not in got and (5, "all") in got
    for u in range(n_users):
        scores = items @ factors[u]
        scores[~known] = -np.inf
        for subset in ranking.SUBSETS:
            rel = np.array(relevant[u])
            w = np.arange(1.0, 5.0)
            rel, w = rel[known[rel]], w[known[rel]]  # cold items are not relevant
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


def test_subset_summaries_equal_plain_python_over_the_per_user_rows(spark):
    """Means, expected percentile rank and coverage@k of every subset, from two aggregations,
    equal the same figures computed row by row; a subset without users is all zeros."""
    import numpy as np
    import pandas as pd
    from musicrec.evaluation import metrics

    rng = np.random.default_rng(11)
    rows = []
    for u in range(40):
        for subset in ("all", "new")[: 1 + u % 2]:
            row = {"user_idx": u, "subset": subset}
            row |= {f"{m}@{k}": float(rng.random()) for m in metrics.NAMES for k in (3, 8)}
            row |= {"epr_num": float(rng.random()), "epr_den": float(rng.random()) + 0.5}
            rows.append(row | {"top": rng.choice(30, 12, replace=False).tolist()})
    per_user = spark.createDataFrame(pd.DataFrame(rows))
    got = ranking.summarize_subsets(per_user, 30, ks=(3, 8), subsets=("all", "new", "none"))
    for subset in ("all", "new"):
        mine = [r for r in rows if r["subset"] == subset]
        assert got[subset]["users"] == len(mine)
        for name in (f"{m}@{k}" for m in metrics.NAMES for k in (3, 8)):
            assert got[subset][name] == pytest.approx(np.mean([r[name] for r in mine]))
        assert got[subset]["expected_percentile_rank"] == pytest.approx(
            sum(r["epr_num"] for r in mine) / sum(r["epr_den"] for r in mine)
        )
        for k in (3, 8):
            distinct = {i for r in mine for i in r["top"][:k]}
            assert got[subset][f"coverage@{k}"] == pytest.approx(len(distinct) / 30)
    assert got["none"]["users"] == 0 and got["none"]["coverage@8"] == 0.0
    assert got["none"]["expected_percentile_rank"] is None
    whole = ranking.summarize(per_user, 30, ks=(3,))
    assert whole["users"] == len(rows)
    assert whole["coverage@3"] == pytest.approx(len({i for r in rows for i in r["top"][:3]}) / 30)


def test_cold_held_out_items_leave_the_metrics_and_are_counted(spark):
    """Items the model cannot know are neither hits nor misses; a user with only those has no
    row, and ``cold_items`` reports them."""
    import numpy as np

    items = np.eye(4, dtype=np.float32)
    known = np.array([True, True, True, False])  # item 3: no factors (cold)
    rows = [
        (0, [1.0, 0.0, 0.0, 0.0], [], [0, 3], [1.0, 1.0]),  # one hit, one cold
        (1, [0.0, 1.0, 0.0, 0.0], [], [3], [1.0]),  # only cold: no row
    ]
    users = spark.createDataFrame(
        rows,
        "user_idx int, features array<float>, seen array<int>, relevant array<int>, "
        "weights array<double>",
    )
    got = {
        (r.user_idx, r.subset): r for r in ranking.evaluate(spark, users, items, known).collect()
    }
    assert set(got) == {(0, "all"), (0, "new")}
    assert got[(0, "all")].n_relevant == 1 and got[(0, "all")]["ndcg@10"] == pytest.approx(1.0)
    holdout = spark.createDataFrame([(0, 0), (0, 3), (1, 3), (2, 1)], "user_idx int, item_idx int")
    assert ranking.cold_items(spark, known, holdout) == {
        "holdout_pairs": 4,
        "cold_pairs": 2,
        "cold_share": 0.5,
        "users_with_cold": 2,
        "users_only_cold": 1,
    }
