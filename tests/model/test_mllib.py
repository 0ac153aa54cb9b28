"""Known-answer ALS and training safeguards."""

from __future__ import annotations

import pytest
from musicrec.config import ALSConfig
from musicrec.exceptions import ConfigError
from musicrec.model import mllib as als
from musicrec.model import scoring
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
    user_factors, item_factors, _ = als.fit(
        spark, data, ALSConfig(rank=4, reg_param=0.01, alpha=10, max_iter=10)
    )
    items, known = scoring.item_matrix(item_factors)
    seen = data.groupBy("user_idx").agg(F.collect_list("item_idx").alias("seen"))
    users = user_factors.select(F.col("id").alias("user_idx"), "features").join(seen, "user_idx")
    recs = scoring.recommend(spark, users, items, known, k=3).collect()
    top3 = {}
    for r in recs:
        top3.setdefault(r.user_idx, []).append(r.item_idx)
    assert all(held[u] in top3[u] for u in held), {u: (held[u], top3[u]) for u in held}


def test_same_seed_same_factors(spark):
    data, _ = two_groups(spark)
    cfg = ALSConfig(rank=3, max_iter=3, seed=7)
    _, a, _ = als.fit(spark, data, cfg)
    _, b, _ = als.fit(spark, data, cfg)
    fa = sorted((r.id, r.features) for r in a.collect())
    fb = sorted((r.id, r.features) for r in b.collect())
    assert fa == fb


def test_many_iterations_do_not_overflow_lineage(spark):
    data, _ = two_groups(spark)
    users, _, _ = als.fit(spark, data, ALSConfig(rank=2, max_iter=35, checkpoint_interval=5))
    assert users.count() == 40


def test_training_refuses_without_checkpoint_dir(spark, monkeypatch):
    """fit itself checks the session: without a checkpoint directory, checkpointInterval
    would silently do nothing and a long fit would overflow its lineage."""
    data, _ = two_groups(spark)
    monkeypatch.setattr(spark.sparkContext, "getCheckpointDir", lambda: None)
    with pytest.raises(ConfigError, match="checkpoint"):
        als.fit(spark, data, ALSConfig(rank=2, max_iter=2))
