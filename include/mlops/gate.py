"""The promotion gate's policy: may a candidate model replace the champion?

Pure and typed: the candidate's and the champion's scores on the same evaluation rows go in, a
decision comes out with every check, its numbers and its verdict. Nothing here loads a model or
talks to MLflow; `include.flights.gating` gathers the inputs and records the decision.

The rules (`Rules.from_dict`, usually from a YAML file):

- `values`: absolute bounds on the candidate's metrics (`min` and/or `max`).
- `changes`: the candidate against the champion. The improvement is measured in the metric's
  better direction (higher ROC AUC, lower log loss), absolute or relative to the champion, and
  must reach `min_improvement`: a negative number is a non-inferiority margin, a positive one a
  required improvement.
- `significance`: a paired bootstrap of the improvement in one metric over the same rows; with
  `require`, the lower bound of its confidence interval must exceed `min_effect`, so that noise
  (the same model registered twice, say) is not promoted.
- `slices`: per value of each slice column with at least `min_support` rows, the metric may not
  regress by more than `tolerance`: a model better on average but broken for one airport fails.
- `operational`: scoring latency per 10,000 rows and model size within budget; every input of
  the model's signature must be served (the feature service plus the request's own columns).

A metric a rule needs but the scores lack fails its check. With no champion, the checks that
compare (changes, significance, slices) cannot run: the absolute ones (values, operational)
decide, and a pass gives the outcome `first-model`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Outcome = Literal["promote", "reject", "first-model"]

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "brier": False,
}
BOOTSTRAP_METRICS = ("roc_auc", "log_loss", "brier")


class RulesError(ValueError):
    """The rule set is malformed; the message names the rule and the problem."""


@dataclass(frozen=True)
class ValueRule:
    metric: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        _check_metric(self.metric, "values")
        if self.min is None and self.max is None:
            raise RulesError(f"values rule on {self.metric} needs a min or a max")


@dataclass(frozen=True)
class ChangeRule:
    metric: str
    min_improvement: float
    relative: bool = False

    def __post_init__(self) -> None:
        _check_metric(self.metric, "changes")


@dataclass(frozen=True)
class SignificanceRule:
    metric: str = "roc_auc"
    resamples: int = 1000
    confidence: float = 0.95
    require: bool = True
    min_effect: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in BOOTSTRAP_METRICS:
            raise RulesError(f"significance supports {', '.join(BOOTSTRAP_METRICS)}, not {self.metric!r}")
        if self.resamples < 100:
            raise RulesError(f"significance needs at least 100 resamples, got {self.resamples}")
        if not 0.5 < self.confidence < 1:
            raise RulesError(f"significance confidence must be in (0.5, 1), got {self.confidence}")


@dataclass(frozen=True)
class SliceRule:
    metric: str = "roc_auc"
    columns: tuple[str, ...] = ("origin", "carrier")
    min_support: int = 300
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        _check_metric(self.metric, "slices")
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.min_support < 1 or self.tolerance < 0:
            raise RulesError("slices need min_support >= 1 and tolerance >= 0")


@dataclass(frozen=True)
class OperationalRule:
    max_latency_ms_per_10k: float = 2000.0
    max_model_mb: float = 50.0


@dataclass(frozen=True)
class Rules:
    values: tuple[ValueRule, ...] = ()
    changes: tuple[ChangeRule, ...] = ()
    significance: SignificanceRule | None = None
    slices: SliceRule | None = None
    operational: OperationalRule | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Rules:
        """Rules from plain data (YAML, JSON, a Param); unknown or malformed entries are errors."""
        if not isinstance(data, Mapping):
            raise RulesError(f"a rule set is a mapping, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise RulesError(f"unknown rule kinds: {', '.join(sorted(unknown))}")
        return cls(
            values=tuple(_build(ValueRule, entry, "values") for entry in _entries(data, "values")),
            changes=tuple(_build(ChangeRule, entry, "changes") for entry in _entries(data, "changes")),
            significance=_build(SignificanceRule, data["significance"], "significance")
            if data.get("significance") is not None
            else None,
            slices=_build(SliceRule, data["slices"], "slices") if data.get("slices") is not None else None,
            operational=_build(OperationalRule, data["operational"], "operational")
            if data.get("operational") is not None
            else None,
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Scores:
    """One model's scores on the evaluation rows: metrics overall and per slice (with "size")."""

    overall: Mapping[str, float]
    slices: Mapping[str, Mapping[str, Mapping[str, float]]]
    predictions: np.ndarray


@dataclass(frozen=True)
class Operational:
    latency_ms_per_10k: float
    model_mb: float
    unserved_inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    kind: str  # value, change, significance, slice, operational
    name: str
    passed: bool
    detail: str
    observed: float | None = None
    limit: float | None = None
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    checks: tuple[Check, ...]

    @property
    def promoted(self) -> bool:
        return self.outcome != "reject"

    @property
    def reasons(self) -> list[str]:
        """Why the candidate was rejected: the failed checks (empty when it passed)."""
        return [check.detail for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "reasons": self.reasons, "checks": [asdict(c) for c in self.checks]}


def decide(
    rules: Rules,
    labels: np.ndarray,
    candidate: Scores,
    champion: Scores | None,
    operational: Operational | None = None,
) -> Decision:
    """Apply every rule; the candidate passes only if every check passes."""
    checks = [_value(rule, candidate.overall) for rule in rules.values]
    if rules.operational is not None:
        if operational is None:
            raise ValueError("the rules have operational budgets but no operational facts were given")
        checks += _operational(rules.operational, operational)
    if champion is not None:
        checks += [_change(rule, candidate.overall, champion.overall) for rule in rules.changes]
        if rules.significance is not None:
            checks.append(_significance(rules.significance, labels, candidate.predictions, champion.predictions))
        if rules.slices is not None:
            checks += _slices(rules.slices, candidate.slices, champion.slices)
    passed = all(check.passed for check in checks)
    outcome: Outcome = "reject" if not passed else ("promote" if champion is not None else "first-model")
    return Decision(outcome, tuple(checks))


def improvement(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is, in the metric's better direction."""
    return candidate - champion if HIGHER_IS_BETTER[metric] else champion - candidate


def paired_bootstrap(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    metric: str = "roc_auc",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The improvement of `candidate` over `champion` in `metric` on the rows, and the percentile
    confidence interval of a paired bootstrap (both models on the same resampled rows).

    Each resample is a vector of row counts; the metric is computed for every resample at once as
    a weighted metric (a weighted ROC AUC from one sort of the scores), not row by row.
    """
    import numpy as np

    y = np.asarray(labels, dtype=np.int8)
    n = len(y)
    rng = np.random.default_rng(seed)
    weights = np.empty((resamples, n), dtype=np.float32)
    for start in range(0, resamples, 100):  # in blocks: a 7k-row, 1000-resample matrix is 28 MB
        block = min(100, resamples - start)
        draws = rng.integers(0, n, size=(block, n))
        offsets = (np.arange(block) * n)[:, None]
        weights[start : start + block] = np.bincount((draws + offsets).ravel(), minlength=block * n).reshape(block, n)
    observed = improvement(metric, _metric(metric, y, candidate, None), _metric(metric, y, champion, None))
    deltas = np.array(
        [
            improvement(metric, c, h)
            for c, h in zip(_metric(metric, y, candidate, weights), _metric(metric, y, champion, weights), strict=True)
        ]
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(observed), float(low), float(high)


def _metric(metric: str, y: np.ndarray, p: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """`metric` of scores `p` for each row of `weights` (or unweighted, as a scalar array)."""
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    w = np.ones((1, len(y)), dtype=np.float32) if weights is None else weights
    if metric == "roc_auc":
        value = _weighted_auc(y, p, w)
    else:
        clipped = np.clip(p, 1e-15, 1 - 1e-15)
        losses = (
            -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)) if metric == "log_loss" else (p - y) ** 2
        ).astype(np.float64)
        value = (w @ losses) / w.sum(axis=1)
    return value if weights is not None else value[0]


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


def _value(rule: ValueRule, metrics: Mapping[str, float]) -> Check:
    bounds = " and ".join(
        part
        for part in (
            f">= {rule.min:g}" if rule.min is not None else "",
            f"<= {rule.max:g}" if rule.max is not None else "",
        )
        if part
    )
    name = f"{rule.metric} {bounds}"
    value = _present(metrics, rule.metric)
    if value is None:
        return Check("value", name, False, f"{rule.metric} is missing from the candidate's metrics")
    passed = (rule.min is None or value >= rule.min) and (rule.max is None or value <= rule.max)
    limit = rule.min if rule.min is not None and value < rule.min else rule.max
    verdict = "within" if passed else "outside"
    return Check("value", name, passed, f"candidate {rule.metric} {value:.4f} is {verdict} {bounds}", value, limit)


def _change(rule: ChangeRule, candidate: Mapping[str, float], champion: Mapping[str, float]) -> Check:
    unit = " (relative)" if rule.relative else ""
    name = f"{rule.metric} improvement{unit} >= {rule.min_improvement:g}"
    cand, champ = _present(candidate, rule.metric), _present(champion, rule.metric)
    if cand is None or champ is None:
        whose = "candidate's" if cand is None else "champion's"
        return Check("change", name, False, f"{rule.metric} is missing from the {whose} metrics")
    delta = improvement(rule.metric, cand, champ)
    if rule.relative:
        delta = delta / abs(champ) if champ else math.inf
    passed = delta >= rule.min_improvement
    detail = (
        f"{rule.metric}: candidate {cand:.4f} vs champion {champ:.4f}, improvement{unit} {delta:+.4f} "
        f"{'>=' if passed else '<'} {rule.min_improvement:g}"
    )
    return Check("change", name, passed, detail, delta, rule.min_improvement, {"candidate": cand, "champion": champ})


def _significance(rule: SignificanceRule, labels: np.ndarray, candidate: np.ndarray, champion: np.ndarray) -> Check:
    observed, low, high = paired_bootstrap(
        labels, candidate, champion, rule.metric, rule.resamples, rule.confidence, rule.seed
    )
    interval = f"{rule.confidence:.0%} CI [{low:+.4f}, {high:+.4f}] over {rule.resamples} paired resamples"
    passed = low > rule.min_effect or not rule.require
    if rule.require:
        verdict = "clears" if passed else "does not clear"
        detail = f"{rule.metric} improvement {observed:+.4f}, {interval}: lower bound {verdict} {rule.min_effect:g}"
    else:
        detail = f"{rule.metric} improvement {observed:+.4f}, {interval} (reported, not required)"
    name = f"{rule.metric} improvement significant above {rule.min_effect:g}"
    numbers = {"improvement": observed, "ci_low": low, "ci_high": high}
    return Check("significance", name, passed, detail, low, rule.min_effect, numbers)


def _slices(
    rule: SliceRule,
    candidate: Mapping[str, Mapping[str, Mapping[str, float]]],
    champion: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[Check]:
    checks = []
    for column in rule.columns:
        if column not in candidate or column not in champion:
            checks.append(
                Check("slice", f"{column} slices", False, f"slice column {column} is missing from the scores")
            )
            continue
        for value, metrics in sorted(candidate[column].items()):
            size = metrics.get("size", 0.0)
            cand, champ = _present(metrics, rule.metric), _present(champion[column].get(value, {}), rule.metric)
            if size < rule.min_support or cand is None or champ is None:
                continue  # too small to judge, or one class only (no ranking metric)
            delta = improvement(rule.metric, cand, champ)
            passed = delta >= -rule.tolerance
            detail = (
                f"slice {column}={value} ({size:.0f} rows): {rule.metric} {cand:.4f} vs champion {champ:.4f}, "
                f"{'within' if passed else 'regresses past'} the tolerance {rule.tolerance:g} ({delta:+.4f})"
            )
            numbers = {"candidate": cand, "champion": champ, "size": size}
            checks.append(
                Check("slice", f"{column}={value} {rule.metric}", passed, detail, delta, -rule.tolerance, numbers)
            )
    return checks


def _operational(rule: OperationalRule, facts: Operational) -> list[Check]:
    latency_ok = facts.latency_ms_per_10k <= rule.max_latency_ms_per_10k
    size_ok = facts.model_mb <= rule.max_model_mb
    served = not facts.unserved_inputs
    return [
        Check(
            "operational",
            f"scoring latency <= {rule.max_latency_ms_per_10k:g} ms per 10k rows",
            latency_ok,
            f"scoring took {facts.latency_ms_per_10k:.0f} ms per 10k rows "
            f"({'within' if latency_ok else 'over'} the {rule.max_latency_ms_per_10k:g} ms budget)",
            facts.latency_ms_per_10k,
            rule.max_latency_ms_per_10k,
        ),
        Check(
            "operational",
            f"model size <= {rule.max_model_mb:g} MB",
            size_ok,
            f"the model is {facts.model_mb:.2f} MB "
            f"({'within' if size_ok else 'over'} the {rule.max_model_mb:g} MB budget)",
            facts.model_mb,
            rule.max_model_mb,
        ),
        Check(
            "operational",
            "signature served by the feature service",
            served,
            "every input of the model's signature is served"
            if served
            else f"inputs the feature service does not serve: {', '.join(facts.unserved_inputs)}",
            float(len(facts.unserved_inputs)),
            0.0,
        ),
    ]


def _present(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _check_metric(metric: str, kind: str) -> None:
    if metric not in HIGHER_IS_BETTER:
        raise RulesError(f"{kind} rule: unknown metric {metric!r} (known: {', '.join(HIGHER_IS_BETTER)})")


def _entries(data: Mapping[str, object], kind: str) -> Sequence[Mapping[str, object]]:
    entries = data.get(kind) or []
    if not isinstance(entries, (list, tuple)):
        raise RulesError(f"{kind} is a list of rules, got {type(entries).__name__}")
    return entries


def _build(kind: type, entry: object, name: str):  # -> an instance of `kind`, one of the rule dataclasses
    if not isinstance(entry, Mapping):
        raise RulesError(f"a {name} rule is a mapping, got {entry!r}")
    unknown = set(entry) - {f.name for f in fields(kind)}
    if unknown:
        raise RulesError(f"{name} rule: unknown fields {', '.join(sorted(unknown))}")
    try:
        return kind(**entry)
    except TypeError as error:
        raise RulesError(f"{name} rule {dict(entry)}: {error}") from None
