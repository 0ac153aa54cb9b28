"""The MLlib layout's own safeguards (the known answer and determinism are the shared
suite's, tests/model/test_layouts.py)."""

from __future__ import annotations

import pytest
from musicrec.config import ALSConfig
from musicrec.exceptions import ConfigError
from musicrec.model import mllib as als

pytestmark = pytest.mark.unit


def two_groups(spark):
    """Users 0-19 stream items 0-9, users 20-39 items 10-19; each misses one of their own.
    The right recommendation is obvious: the missing item of the user's own group."""
    rows, held = [], {}
    for u in range(40):
        group = range(0, 10) if u < 20 else range(10, 20)
        held[u] = group[u % 10]
        rows += [(u, i, 3.0) for i in group if i != held[u]]
    return spark.createDataFrame(rows, "user_idx int, item_idx int, rating float"), held


def test_many_iterations_do_not_overflow_lineage(spark):
    data, _ = two_groups(spark)
    users, _, _ = als.fit(
        spark, data, ALSConfig(layout="mllib", rank=2, max_iter=35, checkpoint_interval=5)
    )
    assert users.count() == 40


def test_training_refuses_without_checkpoint_dir(spark, monkeypatch):
    """fit itself checks the session: without a checkpoint directory, checkpointInterval
    would silently do nothing and a long fit would overflow its lineage."""
    data, _ = two_groups(spark)
    monkeypatch.setattr(spark.sparkContext, "getCheckpointDir", lambda: None)
    with pytest.raises(ConfigError, match="checkpoint"):
        als.fit(spark, data, ALSConfig(layout="mllib", rank=2, max_iter=2))
