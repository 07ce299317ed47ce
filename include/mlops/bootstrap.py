"""Bootstrap intervals of a binary classifier's metrics, every resample computed at once.

A resample is a vector of row counts (how many times each row was drawn); a metric over all
resamples is a weighted metric, one row of weights per resample, so that 1,000 resamples cost a few
matrix operations instead of 1,000 calls of scikit-learn. The gate uses `paired` (two models on
the same resampled rows), the drift monitor `unpaired` (one model on two sets of rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from include.mlops.evaluation import improvement

if TYPE_CHECKING:
    import numpy as np

METRICS = ("roc_auc", "log_loss", "brier")  # the metrics a bootstrap can resample


@dataclass(frozen=True)
class Difference:
    """An improvement (in the metric's better direction) and its percentile confidence interval."""

    observed: float
    low: float
    high: float

    def describe(self, confidence: float, resamples: int) -> str:
        return (
            f"{self.observed:+.4f}, {confidence:.0%} CI [{self.low:+.4f}, {self.high:+.4f}] over {resamples} resamples"
        )


def counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """`resamples` rows of bootstrap counts over `n` rows (each row sums to `n`), seeded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = np.empty((resamples, n), dtype=np.float32)
    for start in range(0, resamples, 100):  # in blocks: a 7k-row, 1000-resample draw is 56 MB of int64
        block = min(100, resamples - start)
        draws = rng.integers(0, n, size=(block, n))
        offsets = (np.arange(block) * n)[:, None]
        weights[start : start + block] = np.bincount((draws + offsets).ravel(), minlength=block * n).reshape(block, n)
    return weights


def metric(name: str, y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """`name` of scores `p` against labels `y`: one value per row of `weights`, or a float unweighted."""
    import numpy as np

    if name not in METRICS:
        raise ValueError(f"the bootstrap resamples {', '.join(METRICS)}, not {name!r}")
    y = np.asarray(y, dtype=np.int8)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones((1, len(y)), dtype=np.float32) if weights is None else weights
    if name == "roc_auc":
        value = _weighted_auc(y, p, w)
    else:
        clipped = np.clip(p, 1e-15, 1 - 1e-15)
        losses = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)) if name == "log_loss" else (p - y) ** 2
        value = (w @ losses.astype(np.float64)) / w.sum(axis=1)
    return value if weights is not None else float(value[0])


def paired(
    name: str,
    y: np.ndarray,
    new: np.ndarray,
    old: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """The improvement of `new` over `old` in `name` on the same rows, with a paired bootstrap
    interval: both models are scored on each resample of the rows (percentiles of the resamples)."""
    observed, deltas = paired_deltas(name, y, new, old, resamples, seed)
    return _interval(observed, deltas, confidence)


def paired_deltas(
    name: str, y: np.ndarray, new: np.ndarray, old: np.ndarray, resamples: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """The observed improvement and its value on each paired resample."""
    import numpy as np

    weights = counts(len(y), resamples, seed)
    observed = improvement(name, metric(name, y, new), metric(name, y, old))
    deltas = improvement(name, metric(name, y, new, weights), metric(name, y, old, weights))
    return float(observed), np.asarray(deltas)


def normal(observed: float, deltas: np.ndarray, confidence: float) -> Difference:
    """A normal interval from the resamples' standard error: for confidences too high for 1,000
    resamples' percentiles to resolve (a family of many intervals)."""
    import statistics

    import numpy as np

    error = float(np.nanstd(deltas))
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return Difference(observed, observed - z * error, observed + z * error)


def unpaired(
    name: str,
    y_new: np.ndarray,
    p_new: np.ndarray,
    y_old: np.ndarray,
    p_old: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """The improvement of the rows (`y_new`, `p_new`) over the rows (`y_old`, `p_old`) in `name`,
    with an interval from resampling each set of rows on its own."""
    import numpy as np

    observed = improvement(name, metric(name, y_new, p_new), metric(name, y_old, p_old))
    new = metric(name, y_new, p_new, counts(len(y_new), resamples, seed))
    old = metric(name, y_old, p_old, counts(len(y_old), resamples, seed + 1))
    return _interval(float(observed), np.asarray(improvement(name, new, old)), confidence)


def _interval(observed: float, deltas: np.ndarray, confidence: float) -> Difference:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(deltas, [tail, 100 - tail])
    return Difference(observed, float(low), float(high))


def _weighted_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC per row of weights: the weighted share of (positive, negative) pairs ranked right,
    ties counting one half.

    The negatives are sorted once; each positive finds, by binary search, how many negatives
    score below it and how many tie with it, the same in every resample. Per resample that leaves
    a running sum of the negatives' weights and one weighted sum over the positives.
    """
    import numpy as np

    positive = y.astype(bool)
    order = np.argsort(p[~positive], kind="stable")
    negatives = p[~positive][order]
    below = np.searchsorted(negatives, p[positive], side="left")
    up_to = np.searchsorted(negatives, p[positive], side="right")
    neg_w, pos_w = w[:, ~positive][:, order], w[:, positive]
    running = np.zeros((w.shape[0], neg_w.shape[1] + 1))
    np.cumsum(neg_w, axis=1, out=running[:, 1:])
    lower, upper = running[:, below], running[:, up_to]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos_w * (lower + upper)).sum(axis=1) / 2 / (pos_w.sum(axis=1) * running[:, -1])
