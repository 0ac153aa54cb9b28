"""The block kernels evaluation and publish share (``model.scoring.ItemSide``), against
brute force: per-item products, unknown items, equal and non-finite user vectors, blocks
smaller than a partition, and the (lists x positions) metrics against the per-list ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from musicrec.evaluation import metrics, ranking
from musicrec.model import scoring

pytestmark = pytest.mark.unit


def brute_force_order(scores: np.ndarray) -> list[int]:
    return sorted(np.flatnonzero(np.isfinite(scores)).tolist(), key=lambda i: (-scores[i], i))


def test_item_side_scores_distinct_vectors_once_and_masks_unknown_and_non_finite_users():
    rng = np.random.default_rng(5)
    items = rng.standard_normal((50, 4)).astype(np.float32)
    known = rng.random(50) > 0.2
    side = scoring.ItemSide(items, known)
    users = rng.standard_normal((6, 4)).astype(np.float32)
    users[3] = users[0]
    users[4] = np.nan  # a broken vector ranks nothing
    users[5, 0] = 3e38  # finite, but its products could overflow float32
    scores, inverse, finite = side.scores(users)
    assert len(scores) == 5 and inverse[3] == inverse[0]
    for u in range(6):
        got = scores[inverse[u]]
        if u in (4, 5):
            assert np.isneginf(got).all() and finite[inverse[u]] == 0
            continue
        expected = items @ users[u]
        np.testing.assert_allclose(got[known], expected[known], rtol=1e-5)
        assert np.isneginf(got[~known]).all() and finite[inverse[u]] == known.sum()


@pytest.mark.parametrize("seed", range(6))
def test_hit_matrix_metrics_equal_the_per_list_metrics(seed):
    rng = np.random.default_rng(seed)
    lists, relevant = [], []
    for _ in range(40):
        lists.append(rng.choice(200, size=int(rng.integers(0, 30)), replace=False))
        relevant.append(rng.choice(200, size=int(rng.integers(1, 25)), replace=False))
    hits = metrics.hits_of(lists, relevant, 30)
    n_relevant = np.array([r.size for r in relevant])
    for k in (1, 5, 30):
        many = metrics.metrics_at(hits, n_relevant, k)
        for j, (ranked, rel) in enumerate(zip(lists, relevant, strict=True)):
            one = metrics.user_metrics(ranked, rel, k)
            for name, value in one.items():
                assert many[name][j] == pytest.approx(value), (name, j, k)


def test_partition_in_small_blocks_equals_one_block_and_brute_force(monkeypatch):
    """Blocks of 7 users (a popularity-like shared vector carried across blocks, and model
    vectors) give the rows one block does, and the top lists brute force gives."""
    rng = np.random.default_rng(9)
    n_users, n_items = 40, 60
    items = rng.integers(0, 6, (n_items, 2)).astype(np.float32)  # ties everywhere
    known = rng.random(n_items) > 0.1
    # Small integers: every product is exact in float32 whatever the BLAS's summation order.
    vectors = [rng.integers(-3, 4, 2).astype(np.float32) for _ in range(n_users)]
    for u in range(0, 20):
        vectors[u] = np.ones(2, np.float32)  # the first 20 users share one vector
    frame = pd.DataFrame(
        {
            "user_idx": np.arange(n_users, dtype=np.int32),
            "features": vectors,
            "seen": [rng.choice(n_items, 5, replace=False).tolist() for _ in range(n_users)],
            "relevant": [rng.choice(n_items, 3, replace=False).tolist() for _ in range(n_users)],
            "weights": [[1.0, 2.0, 3.0]] * n_users,
        }
    )
    whole = pd.concat(list(ranking.score_partition(iter([frame]), items, known)))
    monkeypatch.setattr(scoring, "BLOCK_CELLS", 7 * n_items)
    small = pd.concat(list(ranking.score_partition(iter([frame]), items, known)))
    assert len(small) == len(whole) > n_users
    for (_, a), (_, b) in zip(whole.iterrows(), small.iterrows(), strict=True):
        assert a["top"].tolist() == b["top"].tolist()
        assert a.drop("top").to_dict() == b.drop("top").to_dict()
    for _, row in whole.iterrows():
        u = int(row["user_idx"])
        scores = items @ vectors[u]
        scores[~known] = -np.inf
        if row["subset"] == "new":
            scores[frame["seen"][u]] = -np.inf
        assert row["top"].tolist() == brute_force_order(scores)[:50]


def test_recommend_partition_excludes_seen_items_and_ranks_like_brute_force(monkeypatch):
    """Own rows are masked in place; a row users share (users 0-2 have one vector, as the
    popularity baseline's users do) must not carry one user's seen items to the next."""
    rng = np.random.default_rng(2)
    items = rng.standard_normal((30, 3)).astype(np.float32)
    known = rng.random(30) > 0.2
    seen = [rng.choice(30, 4, replace=False).tolist() for _ in range(9)] + [None]
    features = list(rng.standard_normal((10, 3)).astype(np.float32))
    features[1] = features[2] = features[0]
    frame = pd.DataFrame(
        {"user_idx": np.arange(10, dtype=np.int32), "features": features, "seen": seen}
    )
    monkeypatch.setattr(scoring, "BLOCK_CELLS", 4 * 30)
    out = pd.concat(list(scoring.recommend_partition(iter([frame]), items, known, k=8)))
    assert sorted(out["user_idx"]) == list(range(10))  # one row per user: its list
    for u, listed, values in zip(out["user_idx"], out["item_idx"], out["score"], strict=True):
        scores = items @ frame["features"][u]
        scores[~known] = -np.inf
        scores[seen[u] or []] = -np.inf
        assert listed.tolist() == brute_force_order(scores)[:8]
        np.testing.assert_allclose(values, scores[listed], rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_top_lists_from_the_largest_norms_equal_brute_force(monkeypatch, seed):
    """A few long item vectors (ALS's popular items) and many short ones: most users' lists
    come from the head of largest norms alone, the others (their head items seen, or a weak
    k-th best) from every item; either way brute force's lists, ties by lower index."""
    rng = np.random.default_rng(seed)
    n_items, n_users, k = 80, 30, 5
    # Small integers: products exact in float32, ties everywhere.
    items = rng.integers(-1, 2, (n_items, 3)).astype(np.float32)
    long = rng.choice(n_items, 12, replace=False)
    items[long] = rng.integers(4, 9, (12, 3)) * rng.choice([-1, 1], (12, 3))
    known = rng.random(n_items) > 0.1
    known[long] = True
    users = rng.integers(-3, 4, (n_users, 3)).astype(np.float32)
    users[7] = users[3]  # a shared vector: one user's seen items must not mask the other's
    users[9] = np.nan  # a broken vector: an empty list
    seen: list[object] = [rng.choice(n_items, 6, replace=False) for _ in range(n_users)]
    seen[2] = long.tolist() + [n_items + 5]  # the whole head seen (and an index out of range)
    seen[4] = None
    monkeypatch.setattr(scoring, "HEAD_ITEMS", 12)
    side = scoring.ItemSide(items, known)
    assert side.head() is not None
    lists = side.top_lists(users, seen, k)
    for u in range(n_users):
        scores = items @ users[u]
        scores[~known] = -np.inf
        if seen[u] is not None:
            ok = [i for i in np.asarray(seen[u]).tolist() if i < n_items]
            scores[ok] = -np.inf
        expected = brute_force_order(scores)[:k] if u != 9 else []
        best, values = lists[u]
        assert best.tolist() == expected, u
        np.testing.assert_array_equal(values, scores[expected])
    # Both paths ran: some users from the head alone, some from every item.
    assert 0 < side.answered_by_head < n_users - 1


def test_even_norms_use_no_head(monkeypatch):
    """Unit vectors (the related items' cosine): no item is out of reach, so no head."""
    rng = np.random.default_rng(3)
    items = rng.standard_normal((40, 4)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    monkeypatch.setattr(scoring, "HEAD_ITEMS", 8)
    assert scoring.ItemSide(items, np.ones(40, dtype=bool)).head() is None


def test_evaluation_from_the_head_equals_evaluation_without_it(monkeypatch):
    """Evaluation's top lists and high ranks from the head of largest norms (its own product)
    give the rows the whole rows give; most users' lists never select from a whole row."""
    rng = np.random.default_rng(11)
    n_items, n_users = 120, 40
    items = rng.integers(-1, 2, (n_items, 3)).astype(np.float32)  # exact products, ties
    long = rng.choice(n_items, 15, replace=False)
    items[long] = rng.integers(4, 9, (15, 3))  # popular items most users like
    known = rng.random(n_items) > 0.1
    known[long] = True
    users = rng.integers(0, 4, (n_users, 3)).astype(np.float32)
    users[:5] = -users[:5]  # and a few users who do not
    frame = pd.DataFrame(
        {
            "user_idx": np.arange(n_users, dtype=np.int32),
            "features": list(users),
            "seen": [rng.choice(n_items, 4, replace=False).tolist() for _ in range(n_users)],
            # Relevant items among the long ones (ranked from the head) and the others.
            "relevant": [
                [*rng.choice(long, 2, replace=False).tolist(), int(rng.integers(n_items))]
                for _ in range(n_users)
            ],
            "weights": [[1.0, 2.0, 3.0]] * n_users,
        }
    )
    whole = pd.concat(list(ranking.score_partition(iter([frame]), items, known, ks=(1, 5))))
    selections = []
    best = metrics._best
    monkeypatch.setattr(metrics, "_best", lambda *a: selections.append(1) or best(*a))
    monkeypatch.setattr(scoring, "HEAD_ITEMS", 15)
    from_head = pd.concat(list(ranking.score_partition(iter([frame]), items, known, ks=(1, 5))))
    assert len(from_head) == len(whole) > n_users
    for (_, a), (_, b) in zip(whole.iterrows(), from_head.iterrows(), strict=True):
        assert a["top"].tolist() == b["top"].tolist()
        assert a.drop("top").to_dict() == b.drop("top").to_dict()
    assert len(selections) < n_users // 2


@pytest.mark.parametrize("seed, n_items", [(0, 60), (1, 60), (2, 12), (3, 3), (4, 2)])
def test_users_sharing_one_row_get_the_per_user_paths_rows_without_a_loop(seed, n_items):
    """The popularity baseline: every user ranks from one row. The flat-array path gives the
    per-user path's rows: duplicate, out-of-range and unknown seen items, seen lists longer
    than the top list, cold and seen relevant items, ties, catalogues shorter than k."""
    rng = np.random.default_rng(seed)
    n_users = 40
    items = np.zeros((n_items, 2), np.float32)
    items[:, 0] = rng.integers(0, 5, n_items)  # popularity: ties everywhere
    known = rng.random(n_items) > 0.2

    def some(size: int) -> list[int]:
        return rng.integers(-2, n_items + 3, size).tolist()  # duplicates, out of range

    frame = pd.DataFrame(
        {
            "user_idx": np.arange(n_users, dtype=np.int32) * 3,
            "features": [np.array([1.0, 0.0], np.float32)] * n_users,
            "seen": [
                None if u % 7 == 0 else some(int(rng.integers(0, 60))) for u in range(n_users)
            ],
            "relevant": [
                [i % n_items for i in rng.integers(0, n_items + 2, int(rng.integers(0, 5)))]
                + [n_items + 1] * (u % 5 == 0)
                for u in range(n_users)
            ],
        }
    )
    frame["weights"] = [rng.random(len(r)).tolist() for r in frame["relevant"]]
    side = scoring.ItemSide(items, known)
    ks = (1, 5, 50)
    flat = pd.concat(list(ranking.score_partition(iter([frame]), items, known, ks=ks)))
    per_user = per_user_rows(frame, side, ranking.SUBSETS, ks)
    assert len(flat) == len(per_user) > n_users // 2
    assert flat["subset"].tolist() == per_user["subset"].tolist()
    for (_, a), (_, b) in zip(flat.iterrows(), per_user.iterrows(), strict=True):
        assert a["top"].tolist() == b["top"].tolist()
        assert a.drop("top").to_dict() == pytest.approx(b.drop("top").to_dict(), rel=1e-12)


def per_user_rows(block, side, subsets, ks):
    """The reference: each user's questions asked of a ``metrics.Ranking`` of its whole row
    (the metric definitions, brute-force tested in test_metrics), one user at a time."""
    kmax = max(ks)
    scores, inverse, finite = side.scores(side.vectors(block))
    out = {"user_idx": [], "subset": [], "epr_num": [], "epr_den": [], "top": []}
    relevant_lists = []
    columns = zip(
        block["user_idx"], block["relevant"], block["weights"], block["seen"], strict=True
    )
    for row, (user, relevant, weights, seen) in enumerate(columns):
        ranking_ = metrics.Ranking(scores[inverse[row]], int(finite[inverse[row]]))
        relevant = np.asarray(relevant, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        keep = relevant < side.n
        keep[keep] = side.known[relevant[keep]]
        relevant, weights = relevant[keep], weights[keep]
        seen = np.asarray(seen if seen is not None else [], dtype=np.int64)
        for subset in subsets:
            exclude = seen if subset == "new" else None
            rel, w = relevant, weights
            if exclude is not None and exclude.size:
                fresh = ~metrics.member(rel, exclude)
                rel, w = rel[fresh], w[fresh]
            if rel.size == 0:
                continue
            pr = ranking_.percentile_ranks(rel, exclude)
            out["user_idx"].append(int(user))
            out["subset"].append(subset)
            out["epr_num"].append(float((pr * w).sum()))
            out["epr_den"].append(float(w.sum()))
            out["top"].append(ranking_.top(kmax, exclude))
            relevant_lists.append(rel)
    return scoring.frame_of([ranking._columns(out, relevant_lists, ks)])


def assert_same_rows(got, expected):
    assert len(got) == len(expected) > 0
    assert got["subset"].tolist() == expected["subset"].tolist()
    for (_, a), (_, b) in zip(got.iterrows(), expected.iterrows(), strict=True):
        assert a["top"].tolist() == b["top"].tolist()
        assert a.drop("top").to_dict() == pytest.approx(b.drop("top").to_dict(), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("head_items, ks", [(12, (1, 5)), (4096, (1, 5, 50))])
def test_block_metrics_equal_each_users_own_ranking(monkeypatch, seed, head_items, ks):
    """A few long item vectors (ALS's popular items): most questions are answered from the
    head, some need the whole row (weak users, seen head items, relevant items below the
    bound); with no head (4096: more than the catalogue) every user gets the whole row, and
    top lists longer than most users' unseen items. Either way the rows of a per-user ranking
    of the whole row. Small integers: exact products."""
    monkeypatch.setattr(scoring, "HEAD_ITEMS", head_items)
    rng = np.random.default_rng(seed)
    n_items, n_users = 90, 40
    items = rng.integers(-1, 2, (n_items, 3)).astype(np.float32)
    long = rng.choice(n_items, 12, replace=False)
    items[long] = rng.integers(4, 9, (12, 3))
    known = rng.random(n_items) > 0.1
    users = rng.integers(-3, 4, (n_users, 3)).astype(np.float32)
    users[3] = 1e30  # products overflow: this user ranks nothing

    def some(size):
        return rng.integers(-2, n_items + 3, size).tolist()  # duplicates, out of range

    frame = pd.DataFrame(
        {
            "user_idx": np.arange(n_users, dtype=np.int32) + 100,
            "features": list(users),
            "seen": [
                None if u % 9 == 0 else some(int(rng.integers(0, 30))) for u in range(n_users)
            ],
            "relevant": [
                [*rng.choice(long, int(rng.integers(0, 3)), replace=False).tolist()]
                + rng.integers(0, n_items + 2, int(rng.integers(0, 3))).tolist()
                for u in range(n_users)
            ],
        }
    )
    frame["weights"] = [rng.random(len(r)).tolist() for r in frame["relevant"]]
    side = scoring.ItemSide(items, known)
    got = scoring.frame_of([ranking._block_metrics(frame, side, ranking.SUBSETS, ks, {})])
    assert_same_rows(got, per_user_rows(frame, side, ranking.SUBSETS, ks))
    # With a head, some users were answered without their whole row; without, none.
    assert (side.answered_by_head > 0) == (head_items < n_items)
