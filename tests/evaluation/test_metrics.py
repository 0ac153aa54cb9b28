"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from musicrec.config import GateConfig
from musicrec.evaluation import metrics
from musicrec.evaluation.gate import decide
from musicrec.evaluation.metrics import (
    SAMPLE_STRIDE,
    Ranking,
    SharedRanking,
    percentile_ranks,
    top_k,
    user_metrics,
)

pytestmark = pytest.mark.unit
L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)


def test_hand_computed_metrics():
    # Ranked [5, 1, 7, 3]; relevant {1, 3, 9}: hits at positions 2 and 4.
    m = user_metrics(np.array([5, 1, 7, 3]), np.array([1, 3, 9]), k=4)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / L2 + 1 / L3 + 1 / L4
    assert m["ndcg"] == pytest.approx(dcg / idcg)


def test_precision_divides_by_k_even_with_few_relevant_items():
    m = user_metrics(np.array([4, 2, 8]), np.array([4]), k=3)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == 1.0 and m["map"] == 1.0 and m["ndcg"] == 1.0


def test_short_list_and_no_hits():
    m = user_metrics(np.array([1]), np.array([2, 3]), k=10)
    assert m == {"precision": 0.0, "recall": 0.0, "map": 0.0, "ndcg": 0.0}


def test_user_without_relevant_items_is_undefined():
    with pytest.raises(ValueError):
        user_metrics(np.array([1, 2]), np.array([], dtype=int), k=2)


def test_top_k_breaks_ties_by_lower_index_and_skips_masked():
    scores = np.array([0.5, 0.9, 0.5, -np.inf, 0.5, 0.1])
    assert top_k(scores, 3).tolist() == [1, 0, 2]
    assert top_k(scores, 10).tolist() == [1, 0, 2, 4, 5]
    assert top_k(np.full(3, -np.inf), 2).tolist() == []


def test_percentile_ranks():
    scores = np.array([0.9, 0.1, 0.5, 0.5, -np.inf])
    # Candidates ordered 0, 2, 3, 1 (item 4 is masked): positions 0, 1/3, 2/3, 1.
    assert percentile_ranks(scores, np.array([0, 2, 3, 1])).tolist() == pytest.approx(
        [0.0, 1 / 3, 2 / 3, 1.0]
    )
    assert percentile_ranks(scores, np.array([4])).tolist() == [1.0]


def brute_force_order(scores: np.ndarray) -> list[int]:
    """The definition: finite items sorted by (score desc, index asc)."""
    return sorted(np.flatnonzero(np.isfinite(scores)).tolist(), key=lambda i: (-scores[i], i))


@pytest.mark.parametrize(
    ("kind", "count_below"),
    [(Ranking, 0), (Ranking, 10**9), (SharedRanking, 0)],
    ids=["by-sort", "by-counting", "sorted-whole"],
)
@pytest.mark.parametrize("seed", range(20))
def test_one_ranking_answers_all_and_new_items_like_masking_does(
    seed, kind, count_below, monkeypatch
):
    monkeypatch.setattr(Ranking, "COUNT_BELOW", count_below)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    # Few distinct values, so ties are everywhere (the popularity baseline's case).
    scores = rng.integers(0, 8 if seed % 2 else 10_000, n).astype(np.float32)
    scores[rng.random(n) < 0.1] = -np.inf
    seen = rng.choice(n, size=int(rng.integers(0, n // 2 + 1)), replace=False)
    items = rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)
    ranking = kind(scores)
    masked = scores.copy()
    masked[seen] = -np.inf
    for exclude, reference in ((None, scores), (seen, masked)):
        order = brute_force_order(reference)
        for k in (1, 10, n):
            assert ranking.top(k, exclude).tolist() == order[:k]
            assert top_k(reference, k).tolist() == order[:k]
        position = {item: p for p, item in enumerate(order)}
        expected = [position[i] / max(len(order) - 1, 1) if i in position else 1.0 for i in items]
        if len(order) <= 1:
            expected = [0.0] * len(items)
        assert ranking.percentile_ranks(items, exclude).tolist() == pytest.approx(expected)


@pytest.mark.parametrize(
    "kind", ["random", "ties", "mostly-masked", "ascending", "descending", "all-equal", "periodic"]
)
def test_top_k_of_long_rows_equals_the_definition(kind):
    """Rows past ``SAMPLED_FROM`` are selected from a sampled threshold: the same k best as
    the definition, whether the guess holds or the row defeats it (sorted rows, ties at the
    threshold, a sample of mostly masked scores)."""
    rng = np.random.default_rng(len(kind))
    n = 20_000
    scores = {
        "random": rng.standard_normal(n),
        "ties": rng.integers(0, 40, n).astype(float),
        "mostly-masked": np.where(rng.random(n) < 0.95, -np.inf, rng.standard_normal(n)),
        "ascending": np.arange(n, dtype=float),
        "descending": -np.arange(n, dtype=float),
        "all-equal": np.ones(n),
        # The sampled scores are the best ones: the guess leaves too few, all are selected.
        "periodic": np.where(np.arange(n) % SAMPLE_STRIDE == 0, 2.0, 1.0) + rng.random(n),
    }[kind].astype(np.float32)
    guessed = metrics._candidates(scores, 10).size < n
    assert guessed == (kind not in ("all-equal", "periodic")), kind
    order = brute_force_order(scores)
    for k in (1, 10, 100, 500, 5_000):
        assert top_k(scores, k).tolist() == order[:k], k
        assert Ranking(scores).prefix(k).tolist() == order[:k], k


@pytest.mark.parametrize(
    ("model", "pop", "published", "passed", "phrase"),
    [
        (0.30, 0.10, None, True, "no published model"),
        (0.14, 0.10, None, False, "below 1.5 x popularity"),
        (0.30, 0.10, 0.40, False, "25.0% below the published"),
        (0.37, 0.10, 0.40, True, ">= floor"),
    ],
)
def test_gate(model, pop, published, passed, phrase):
    decision = decide(
        {"ndcg@10": model},
        {"ndcg@10": pop},
        None if published is None else {"ndcg@10": published},
        GateConfig(),
    )
    assert decision["passed"] is passed
    assert any(phrase in r for r in decision["reasons"])
