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
    return metrics_from_hits(member(ranked[:k], relevant), relevant.size, k)


def member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """``np.isin`` without its fixed cost for the short lists of one user."""
    if of.size > 256:
        return np.isin(values, of)
    wanted = set(of.tolist())
    return np.fromiter((v in wanted for v in values.tolist()), dtype=bool, count=values.size)


def metrics_from_hits(hit: np.ndarray, n_relevant: int, k: int) -> dict[str, float]:
    """Metrics at k from ``hit`` (is the i-th ranked item relevant?), ``n_relevant`` > 0: one
    membership test of the longest list serves every k."""
    many = metrics_at(hit[None, :k], np.array([n_relevant]), k)
    return {name: float(values[0]) for name, values in many.items()}


def metrics_at(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """``metrics_from_hits`` for many lists at once: ``hits`` (lists x positions, False past a
    list's end), ``n_relevant`` > 0 for each list."""
    hits = hits[:, :k]
    width = hits.shape[1]
    found = hits.sum(axis=1)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
    ideal = np.minimum(k, n_relevant)
    disc = _discounts(k)
    ideal_dcg = np.cumsum(disc)[ideal - 1]
    return {
        "precision": found / k,
        "recall": found / n_relevant,
        "map": (precision_at_i * hits).sum(axis=1) / ideal,
        "ndcg": (disc[:width] * hits).sum(axis=1) / ideal_dcg,
    }


def hits_of(lists: list[np.ndarray], relevant: list[np.ndarray], width: int) -> np.ndarray:
    """(lists x width) bool: is the i-th item of ``lists[j]`` in ``relevant[j]``? One
    binary search for all of them, over sorted (list, item) keys (``np.isin`` hashes: 4x
    slower at 10k users' lists)."""
    out = np.zeros((len(lists), width), dtype=bool)
    if not lists:
        return out
    lengths = np.fromiter((x.size for x in lists), dtype=np.int64, count=len(lists))
    rel_lengths = np.fromiter((x.size for x in relevant), dtype=np.int64, count=len(relevant))
    ranked = np.concatenate([*lists, np.empty(0, np.int64)]).astype(np.int64)
    wanted = np.concatenate([*relevant, np.empty(0, np.int64)]).astype(np.int64)
    span = int(max(ranked.max(initial=0), wanted.max(initial=0))) + 1
    which = np.repeat(np.arange(len(lists)), lengths)
    keys = which * span + ranked
    rel_keys = np.repeat(np.arange(len(relevant)), rel_lengths) * span + wanted
    position = np.arange(ranked.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[which, position] = in_sorted(keys, np.sort(rel_keys))
    return out


SAMPLE_STRIDE = 32  # every 32nd score guesses a threshold for the k best (``_best``)
SAMPLED_FROM = 4096  # shorter rows are selected whole


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of a superset of the k best scores: those at or above a threshold guessed from
    a strided sample (the sample's 2k/32-th best, about the row's 2k-th), checked to leave at
    least k; else every index. One pass over the row instead of a selection over all of it:
    numpy's partition of 160k float32 takes 0.88 ms here, this 0.12 ms (measured)."""
    n = scores.size
    if n >= SAMPLED_FROM and 4 * k < n // SAMPLE_STRIDE:
        sample = scores[::SAMPLE_STRIDE]
        j = 2 * (k // SAMPLE_STRIDE) + 8
        picked = np.flatnonzero(scores >= np.partition(sample, -j)[-j])
        if picked.size >= k:
            return picked
    return np.arange(n)


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores (k <= the finite ones), best first, ties by lower index.
    The k-th best is exact: the candidates hold every score at or above it."""
    candidates = _candidates(scores, k)
    values = scores[candidates]
    kept = candidates[values >= np.partition(values, -k)[-k]]
    order = np.lexsort((kept, -scores[kept]))
    return kept[order][:k]


def top_k(scores: np.ndarray, k: int, n_finite: int | None = None) -> np.ndarray:
    """Indices of the k best finite scores, best first, ties by lower index.

    ``n_finite``: the caller knows how many scores are finite and that all others are -inf
    (``scoring.ItemSide``), which spares a pass over the scores to find them.
    """
    if n_finite is None:
        finite = np.isfinite(scores)
        n = int(np.count_nonzero(finite))
        masked = scores if n == scores.size else np.where(finite, scores, -np.inf)
    else:
        n, masked = n_finite, scores
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    return _best(masked, min(k, n))


class Ranking:
    """One user's total order over the finite-scored items (score desc, index asc).

    It answers both the "all items" and the "new items" questions (the same order with the
    user's seen items taken out) one user at a time: the definition the evaluation's block
    paths (``ranking._block_metrics``) are tested against. Nothing is sorted whole: the top
    is a selection (``_best``) of the depth asked, kept for shallower questions; a percentile
    rank counts the items scored above (a sort, once, only for users with many relevant
    items).
    """

    # Up to this many items, rank by counting (one pass over the row each, 18 us at 160k
    # items); above, by one sort of the row (4 ms there): measured break-even ~220 items.
    COUNT_BELOW = 128

    def __init__(self, scores: np.ndarray, n_finite: int | None = None) -> None:
        """``n_finite`` as in ``top_k``: how many scores are finite, all others being -inf."""
        if n_finite is None:
            finite = np.isfinite(scores)
            self.n = int(np.count_nonzero(finite))
            self.scores = scores if self.n == scores.size else np.where(finite, scores, -np.inf)
        else:
            self.n, self.scores = n_finite, scores
        self._best = np.empty(0, dtype=np.int64)  # the longest prefix of the order found
        self._ascending: np.ndarray | None = None
        self._ahead: dict[int, int] = {}  # item -> items ahead of it, for both subsets
        self._excluded: tuple[object, np.ndarray] = (None, np.empty(0, dtype=np.int64))

    def prefix(self, depth: int) -> np.ndarray:
        """The first ``depth`` items of the order (at most all finite ones)."""
        depth = min(depth, self.n)
        if depth > self._best.size:
            self._best = _best(self.scores, depth)
        return self._best[:depth]

    def _finite(self, exclude: np.ndarray | None) -> np.ndarray:
        """``exclude`` as sorted unique finite-scored items; the same array object asked
        again (one user's top list and percentile ranks) is cleaned once."""
        if exclude is None or len(exclude) == 0:
            return np.empty(0, dtype=np.int64)
        if self._excluded[0] is not exclude:
            items = item_indices(exclude, self.scores.size)
            self._excluded = (exclude, items[np.isfinite(self.scores[items])])
        return self._excluded[1]

    def top(self, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """The k best items, skipping ``exclude``."""
        exclude = self._finite(exclude)
        if k <= 0 or min(k + exclude.size, self.n) <= 0:
            return np.empty(0, dtype=np.int64)
        best = self.prefix(k + exclude.size)
        if exclude.size:
            best = best[~in_sorted(best, exclude)]
        return best[:k]

    def _before(self, items: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Finite-scored items ahead of each item: higher scores, and equal scores at a lower
        index (ties broken by index). Counting makes one pass over the row per item: at or
        above its score before it, above it after it (two passes, > and ==, cost 26 us an
        item at 160k items against 18)."""
        if items.size <= self.COUNT_BELOW:
            ahead, row = self._ahead, self.scores
            for i, v in zip(items.tolist(), s.tolist(), strict=True):
                if i not in ahead:
                    ahead[i] = int(
                        np.count_nonzero(row[:i] >= v) + np.count_nonzero(row[i + 1 :] > v)
                    )
            return np.array([ahead[i] for i in items.tolist()], dtype=np.int64)
        if self._ascending is None:
            self._ascending = np.sort(self.scores[np.isfinite(self.scores)])
        right = np.searchsorted(self._ascending, s, side="right")
        before = (self.n - right).astype(np.int64)
        equal = right - np.searchsorted(self._ascending, s, side="left")
        for j in np.flatnonzero(equal > 1):  # ties are rare for ALS
            before[j] += np.count_nonzero(self.scores[: items[j]] == s[j])
        return before

    def percentile_ranks(self, items: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Position of each item among the candidates (minus ``exclude``), scaled to [0, 1]."""
        items = np.asarray(items, dtype=np.int64)
        exclude = self._finite(exclude)
        n = self.n - exclude.size
        if n <= 1:
            return np.zeros(items.size)
        s = self.scores[items]
        before = self._before(items, s)
        if exclude.size:
            es = self.scores[exclude]
            above = (es[None, :] > s[:, None]) | (
                (es[None, :] == s[:, None]) & (exclude[None, :] < items[:, None])
            )
            before -= above.sum(axis=1)
        candidate = np.isfinite(s) & ~in_sorted(items, exclude)
        return np.where(candidate, before / (n - 1), 1.0)


class SharedRanking(Ranking):
    """A ``Ranking`` sorted whole once, for a row many users rank from (the popularity
    baseline: every user has one vector). Each user's questions are then lookups: a top list
    is a slice of the order, an item's rank its position. Counting passes per user, cached
    per item, cost 0.17 ms a user at 160k items (mostly Python around them); this a fraction."""

    def __init__(self, scores: np.ndarray, n_finite: int | None = None) -> None:
        super().__init__(scores, n_finite)
        finite = np.flatnonzero(np.isfinite(self.scores))
        self.order = finite[np.lexsort((finite, -self.scores[finite]))]  # the whole order
        self._best = self.order
        # Each item's place in the order; ``n`` for an item that is not finite.
        self.position = np.full(self.scores.size, self.n, dtype=np.int64)
        self.position[self.order] = np.arange(self.order.size)

    def _before(self, items: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Finite items ahead of each finite item: its position (``n`` for an item that is not
        finite, which ``percentile_ranks`` ranks last anyway)."""
        return self.position[items]


def item_indices(items: object, n: int) -> np.ndarray:
    """``items`` (indices; None or empty for none) as sorted unique int64 indices in [0, n):
    how a user's seen list is cleaned wherever it masks scores."""
    if items is None or len(items) == 0:  # type: ignore[arg-type]
        return np.empty(0, dtype=np.int64)
    idx = np.unique(np.asarray(items, dtype=np.int64))
    return idx[(idx >= 0) & (idx < n)]


def in_sorted(values: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Is each of ``values`` in ``ordered`` (sorted; repeats allowed)? A binary search each:
    a user's lists are too short for ``np.isin``'s fixed cost and too long for a Python set."""
    if ordered.size == 0:
        return np.zeros(values.shape, dtype=bool)
    at = np.searchsorted(ordered, values)
    return ordered[np.minimum(at, ordered.size - 1)] == values


def percentile_ranks(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position of each item among the finite-scored candidates, scaled to [0, 1]."""
    return Ranking(scores).percentile_ranks(items)
