"""Metrics of a binary classifier, overall and per slice, as plain numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "positive_rate")
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "brier": False,
}


class Classifier(Protocol):
    """A fitted binary classifier, as scikit-learn's: `predict_proba` gives both classes' probabilities."""

    def predict_proba(self, x: Any) -> np.ndarray: ...


def positive_probability(model: Classifier, x: Any) -> np.ndarray:
    """The probability of the positive class for each row of `x`."""
    return model.predict_proba(x)[:, 1]


def improvement(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old`, in the metric's better direction."""
    return new - old if HIGHER_IS_BETTER[metric] else old - new


@dataclass(frozen=True)
class Evaluation:
    """Overall metrics, and per slice value the same metrics with the slice's size."""

    overall: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]  # slice column -> value -> metrics (+ "size")
    threshold: float

    def flat(self) -> dict[str, float]:
        """`metric` and `<slice>.<value>.<metric>` names, as MLflow metric keys."""
        flat = dict(self.overall)
        for column, values in self.slices.items():
            for value, metrics in values.items():
                flat.update({f"{column}.{value}.{name}": number for name, number in metrics.items()})
        return flat


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score, precision and recall at `threshold`.

    Ranking metrics are NaN when only one class is present (a small slice, say).
    """
    import numpy as np
    from sklearn import metrics

    y, p = np.asarray(y), np.asarray(p)
    predicted = p >= threshold
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(metrics.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(metrics.average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(metrics.log_loss(y, p, labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(y, p)),
        "precision": float(metrics.precision_score(y, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y, predicted, zero_division=0)),
        "positive_rate": float(y.mean()),
    }


def evaluate(
    y: np.ndarray, p: np.ndarray, threshold: float, slices: Mapping[str, pd.Series] | None = None
) -> Evaluation:
    """Metrics overall and for every value of every slice column (aligned with `y`)."""
    import numpy as np

    y, p = np.asarray(y), np.asarray(p)
    by_slice: dict[str, dict[str, dict[str, float]]] = {}
    for column, values in (slices or {}).items():
        values = np.asarray(values)
        by_slice[column] = {
            str(value): binary_metrics(y[values == value], p[values == value], threshold)
            | {"size": float((values == value).sum())}
            for value in sorted(set(values) - {None})
        }
    return Evaluation(binary_metrics(y, p, threshold), by_slice, threshold)


def relative_latency(new: Callable[[], object], old: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """How long `new` takes as a ratio to `old`, and `new`'s own seconds.

    Both run in this process, alternately, `repeats` times each, on one thread (BLAS and OpenMP
    pools limited to one), each timed by the CPU time this process spends (other processes on the
    machine do not count) with its least run kept (noise only adds time). On a busy machine a
    wall-clock time would grow with the load and a multi-threaded one would count the threads'
    spinning while they wait for a core; one thread's CPU time measures the work alone.
    """
    import time

    from threadpoolctl import threadpool_limits

    seconds: dict[str, list[float]] = {"new": [], "old": []}
    with threadpool_limits(limits=1):
        for _ in range(repeats):
            for name, call in (("new", new), ("old", old)):
                started = time.process_time()
                call()
                seconds[name].append(time.process_time() - started)
    fastest_new, fastest_old = min(seconds["new"]), min(seconds["old"])
    return fastest_new / max(fastest_old, 1e-9), fastest_new
