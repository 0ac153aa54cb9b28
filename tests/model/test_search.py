"""The search's validation split: deterministic by hash, never randomSplit (SPARK-28927)."""

from __future__ import annotations

import pytest
from musicrec.model.search import hash_split

from tests.model.test_mllib import two_groups

pytestmark = pytest.mark.unit


def test_hash_split_is_deterministic_and_disjoint(spark):
    data, _ = two_groups(spark)
    fit1, val1 = hash_split(data, 0.2, seed=1)
    fit2, val2 = hash_split(data, 0.2, seed=1)
    assert sorted(val1.collect()) == sorted(val2.collect())
    assert fit1.count() + val1.count() == data.count()
    assert fit1.join(val1, ["user_idx", "item_idx"]).count() == 0
    assert sorted(fit1.collect()) == sorted(fit2.collect())
