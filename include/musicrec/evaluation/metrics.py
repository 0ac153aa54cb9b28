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


def _best_from(scores: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """Indices with score >= threshold, best first, ties by lower index, at most k."""
    candidates = np.flatnonzero(scores >= threshold)
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:k]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores, best first, ties by lower index."""
    finite = np.isfinite(scores)
    n = int(np.count_nonzero(finite))
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, n)
    masked = scores if n == scores.size else np.where(finite, scores, -np.inf)
    return _best_from(masked, np.partition(masked, -k)[-k], k)


class Ranking:
    """One user's total order over the finite-scored items (score desc, index asc).

    Built from one sort, it answers both the "all items" and the "new items" questions (the
    same order with the user's seen items taken out), so an evaluation scores and sorts each
    user once instead of once per subset.
    """

    def __init__(self, scores: np.ndarray) -> None:
        finite = np.isfinite(scores)
        self.scores = np.where(finite, scores, -np.inf)
        self.ascending = np.sort(scores[finite])
        self.n = self.ascending.size

    def top(self, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """The k best items, skipping ``exclude``."""
        exclude = _finite_only(self.scores, exclude)
        want = min(k + exclude.size, self.n)
        if want <= 0 or k <= 0:
            return np.empty(0, dtype=np.int64)
        best = _best_from(self.scores, self.ascending[-want], want)
        if exclude.size:
            best = best[~np.isin(best, exclude)]
        return best[:k]

    def percentile_ranks(self, items: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Position of each item among the candidates (minus ``exclude``), scaled to [0, 1]."""
        items = np.asarray(items, dtype=np.int64)
        exclude = _finite_only(self.scores, exclude)
        n = self.n - exclude.size
        if n <= 1:
            return np.zeros(items.size)
        s = self.scores[items]
        higher = self.n - np.searchsorted(self.ascending, s, side="right")
        equal = self.n - higher - np.searchsorted(self.ascending, s, side="left")
        before = higher.astype(np.int64)
        # Ties: candidates with the same score and a lower index rank above (rare for ALS).
        for j in np.flatnonzero(equal > 1):
            before[j] += np.count_nonzero(self.scores[: items[j]] == s[j])
        if exclude.size:
            es = self.scores[exclude]
            above = (es[None, :] > s[:, None]) | (
                (es[None, :] == s[:, None]) & (exclude[None, :] < items[:, None])
            )
            before -= above.sum(axis=1)
        candidate = np.isfinite(s) & ~np.isin(items, exclude)
        return np.where(candidate, before / (n - 1), 1.0)


def _finite_only(scores: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    if exclude is None or len(exclude) == 0:
        return np.empty(0, dtype=np.int64)
    exclude = np.unique(np.asarray(exclude, dtype=np.int64))
    exclude = exclude[(exclude >= 0) & (exclude < scores.size)]
    return exclude[np.isfinite(scores[exclude])]


def percentile_ranks(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position of each item among the finite-scored candidates, scaled to [0, 1]."""
    return Ranking(scores).percentile_ranks(items)
