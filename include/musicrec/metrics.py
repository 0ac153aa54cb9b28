"""Top-k ranking metrics for one user, in numpy; averaged over users by the caller.

For a user with relevant (held-out) items R, |R| > 0, and a ranked list L (best first):

* precision@k = |L[:k] & R| / k (divides by k even when |R| < k)
* recall@k    = |L[:k] & R| / |R|
* AP@k        = sum_{i<=k, L_i in R} precision@i / min(k, |R|)   (MAP@k: mean over users)
* NDCG@k      = sum_{i<=k, L_i in R} 1/log2(i+1) / sum_{i<=min(k,|R|)} 1/log2(i+1)
* expected percentile rank (Hu et al. 2008): sum r_ui * rank_ui / sum r_ui, rank_ui in [0, 1]
  the position of i among all candidate items (0 = top); 0.5 is random, lower is better.

Users with no held-out items have no defined recall or NDCG and are left out of every mean.
Ties in score are broken by item index (lower first), so rankings are deterministic.
"""

from __future__ import annotations

import numpy as np

KS = (10, 50)
NAMES = ("precision", "recall", "map", "ndcg")


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def user_metrics(ranked: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, float]:
    """Metrics at k for one user; ``relevant`` must be non-empty."""
    if relevant.size == 0:
        raise ValueError("metrics are undefined for a user without relevant items")
    top = ranked[:k]
    hit = np.isin(top, relevant)
    hits = int(hit.sum())
    cum_hits = np.cumsum(hit)
    precision_at_i = cum_hits / np.arange(1, top.size + 1)
    ideal = min(k, relevant.size)
    disc = _discounts(k)
    return {
        "precision": hits / k,
        "recall": hits / relevant.size,
        "map": float((precision_at_i * hit).sum() / ideal),
        "ndcg": float((disc[: top.size] * hit).sum() / disc[:ideal].sum()),
    }


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores, best first, ties by lower index."""
    finite = np.isfinite(scores)
    n = int(finite.sum())
    if n == 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, n)
    masked = np.where(finite, scores, -np.inf)
    threshold = np.partition(masked, -k)[-k]
    candidates = np.nonzero(masked >= threshold)[0]
    order = np.lexsort((candidates, -masked[candidates]))
    return candidates[order][:k]


def percentile_ranks(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position of each item among the finite-scored candidates, scaled to [0, 1]."""
    finite = scores[np.isfinite(scores)]
    n = finite.size
    if n <= 1:
        return np.zeros(items.size)
    s = scores[items]
    higher = (finite[None, :] > s[:, None]).sum(axis=1)
    # Ties: candidates with the same score but a lower index rank above.
    idx = np.nonzero(np.isfinite(scores))[0]
    ties_before = ((scores[idx][None, :] == s[:, None]) & (idx[None, :] < items[:, None])).sum(1)
    ranks = (higher + ties_before) / (n - 1)
    return np.where(np.isfinite(s), ranks, 1.0)
