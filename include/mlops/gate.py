"""The promotion gate's policy: may a candidate model replace the champion?

Pure and typed: the evaluation rows (labels and slice columns), the candidate's and the champion's
predictions on them, and the operational facts go in; a decision comes out with every check, its
numbers and its verdict, and the list of what could not be checked. Nothing here loads a model or
talks to MLflow; `include.flights.gating` gathers the inputs and records the decision.

The rules (`Rules.from_dict`, usually from a YAML file):

- `values`: absolute bounds on the candidate's metrics (`min` and/or `max`).
- `baseline`: with no champion, the candidate must beat the constant predictor of the base rate
  (the share of positives in its own training data) on each of `metrics` by at least
  `min_relative_improvement`: a model that says 50% for every flight is not a first model.
- `changes`: the candidate against the champion. The improvement is measured in the metric's
  better direction (higher ROC AUC, lower log loss), absolute or relative to the champion, and
  must reach `min_improvement`: a negative number is a non-inferiority margin, a positive one a
  required improvement.
- `significance`: a paired bootstrap of the improvement in one metric over the same rows; with
  `require`, the lower bound of its confidence interval must exceed `min_effect` (a negative
  `min_effect` is a non-inferiority margin held with confidence).
- `slices`: for each value of each slice column with at least `min_support` rows and
  `min_class_rows` of each class, the slice's own paired bootstrap: the slice fails when its
  regression is beyond `tolerance` with confidence (the interval's upper bound is below
  `-tolerance`), so one noisy carrier does not block a better model and a broken one does. The
  `confidence` holds for all the slices checked together (a Bonferroni correction: with a hundred
  destinations, a hundred 95% intervals would find a "regression" in noise), each slice's interval
  being a normal one from its resamples' standard error. Slices too small to judge are listed as
  not checked.
- `operational`: the candidate's scoring time as a ratio to the champion's (both measured in the
  same process on the same rows, on one thread, in CPU time, the least of repeats: what else the
  machine runs does not count; `include.mlops.evaluation.relative_latency`), the model's size, and
  every input of its signature served (the feature service plus the request's own columns). With
  no champion the latency ratio is not checked.

Inputs are validated first: predictions of the wrong length, NaN or outside [0, 1] raise
`GateError` naming the model. A metric a rule needs but cannot be computed fails its check.
With no champion, the comparing checks (changes, significance, slices) cannot run and a pass
gives the outcome `first-model`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Literal, TypeVar

from include.mlops import bootstrap
from include.mlops.evaluation import HIGHER_IS_BETTER, binary_metrics, improvement
from include.mlops.settings import build, refuse_unknown

if TYPE_CHECKING:
    import numpy as np

Outcome = Literal["promote", "reject", "first-model"]
T = TypeVar("T")
Judged = Literal["promote", "reject", "first-model", "error"]  # a judgement's: error when none could be made


class RulesError(ValueError):
    """The rule set is malformed; the message names the rule and the problem."""


class GateError(RuntimeError):
    """The gate cannot judge (malformed predictions, no evaluation data, an unknown version); the
    message names the model or the data. Retrying does not help."""


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
class BaselineRule:
    metrics: tuple[str, ...] = ("log_loss", "brier")
    min_relative_improvement: float = 0.02

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        for metric in self.metrics:
            if metric not in ("log_loss", "brier"):
                raise RulesError(f"baseline rule: a constant predictor is judged on log_loss or brier, not {metric!r}")


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
        _check_bootstrap(self.metric, self.resamples, self.confidence, "significance")


@dataclass(frozen=True)
class SliceRule:
    metric: str = "roc_auc"
    columns: tuple[str, ...] = ()  # the domain's slice columns, named by its rule set
    min_support: int = 100
    min_class_rows: int = 10
    tolerance: float = 0.03
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        _check_bootstrap(self.metric, self.resamples, self.confidence, "slices")
        if self.min_support < 1 or self.min_class_rows < 1 or self.tolerance < 0:
            raise RulesError("slices need min_support >= 1, min_class_rows >= 1 and tolerance >= 0")


@dataclass(frozen=True)
class OperationalRule:
    max_latency_ratio: float = 3.0
    max_model_mb: float = 50.0

    def __post_init__(self) -> None:
        if self.max_latency_ratio <= 0 or self.max_model_mb <= 0:
            raise RulesError("operational budgets must be positive")


@dataclass(frozen=True)
class Rules:
    values: tuple[ValueRule, ...] = ()
    baseline: BaselineRule | None = None
    changes: tuple[ChangeRule, ...] = ()
    significance: SignificanceRule | None = None
    slices: SliceRule | None = None
    operational: OperationalRule | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Rules:
        """Rules from plain data (YAML, JSON, a Param); unknown or malformed entries are errors."""
        if not isinstance(data, Mapping):
            raise RulesError(f"a rule set is a mapping, got {type(data).__name__}")
        refuse_unknown(data, (f.name for f in fields(cls)), "rule kinds", RulesError)

        def one(kind: type, name: str):  # -> an instance of `kind`, or None when the rule is absent
            return _build(kind, data[name], name) if data.get(name) is not None else None

        return cls(
            values=tuple(_build(ValueRule, entry, "values") for entry in _entries(data, "values")),
            baseline=one(BaselineRule, "baseline"),
            changes=tuple(_build(ChangeRule, entry, "changes") for entry in _entries(data, "changes")),
            significance=one(SignificanceRule, "significance"),
            slices=one(SliceRule, "slices"),
            operational=one(OperationalRule, "operational"),
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationSet:
    """The rows both models are judged on: labels, each row's slice values, the decision threshold
    (for precision and recall) and the base rate the candidate was trained on (for `baseline`)."""

    labels: np.ndarray
    slices: Mapping[str, np.ndarray] = field(default_factory=dict)
    threshold: float = 0.5
    base_rate: float | None = None


@dataclass(frozen=True)
class Predictions:
    """One model's probabilities on the evaluation rows; `model` names it in messages."""

    model: str
    p: np.ndarray


@dataclass(frozen=True)
class Operational:
    model_mb: float
    latency_ratio: float | None = None  # candidate's scoring time / champion's, same process and rows
    latency_ms_per_10k: float | None = None  # the candidate's own, reported only
    unserved_inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    kind: str  # value, baseline, change, significance, slice, operational
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
    not_checked: tuple[str, ...] = ()  # what a rule asked for but could not be judged, and why
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # "candidate"/"champion" -> overall

    @property
    def promoted(self) -> bool:
        return self.outcome != "reject"

    @property
    def reasons(self) -> list[str]:
        """Why the candidate was rejected: the failed checks (empty when it passed)."""
        return [check.detail for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "checks": [asdict(c) for c in self.checks],
            "not_checked": list(self.not_checked),
            "metrics": self.metrics,
        }


def decide(
    rules: Rules,
    evaluation: EvaluationSet,
    candidate: Predictions,
    champion: Predictions | None = None,
    operational: Operational | None = None,
) -> Decision:
    """Apply every rule; the candidate passes only if every check passes.

    Raises `GateError` naming the model when its predictions cannot be judged.
    """
    import numpy as np

    labels = np.asarray(evaluation.labels)
    for model in (candidate, champion):
        if model is not None:
            validate(model, len(labels))
    slices = {c: np.asarray(v) for c, v in evaluation.slices.items()}
    candidate_overall = binary_metrics(labels, candidate.p, evaluation.threshold)
    metrics = {"candidate": candidate_overall}
    not_checked: list[str] = []

    checks = [_value(rule, candidate_overall) for rule in rules.values]
    if rules.operational is not None:
        if operational is None:
            raise ValueError("the rules have operational budgets but no operational facts were given")
        checks += _operational(rules.operational, operational, not_checked)
    if champion is None:
        if rules.baseline is not None:
            checks += _baseline(rules.baseline, labels, candidate, evaluation.base_rate)
    else:
        champion_overall = binary_metrics(labels, champion.p, evaluation.threshold)
        metrics["champion"] = champion_overall
        checks += [_change(rule, candidate_overall, champion_overall) for rule in rules.changes]
        if rules.significance is not None:
            checks.append(_significance(rules.significance, labels, candidate.p, champion.p))
        if rules.slices is not None:
            checks += _slices(rules.slices, labels, slices, candidate.p, champion.p, not_checked)
    passed = all(check.passed for check in checks)
    outcome: Outcome = "reject" if not passed else ("promote" if champion is not None else "first-model")
    return Decision(outcome, tuple(checks), tuple(not_checked), metrics)


def validate(model: Predictions, rows: int) -> None:
    """Refuse predictions the gate cannot judge, naming the model and what is wrong with them."""
    import numpy as np

    p = np.asarray(model.p)
    if p.ndim != 1 or len(p) != rows:
        raise GateError(f"{model.model}: {p.shape} predictions for {rows} evaluation rows (one per row expected)")
    try:
        p = p.astype(np.float64)
    except (TypeError, ValueError):
        raise GateError(f"{model.model}: predictions are not numbers (dtype {p.dtype})") from None
    missing = int(np.isnan(p).sum())
    if missing:
        raise GateError(f"{model.model}: {missing} of {rows} predictions are NaN")
    outside = int(((p < 0) | (p > 1)).sum())
    if outside:
        raise GateError(
            f"{model.model}: {outside} of {rows} predictions are outside [0, 1] "
            f"(from {p.min():.4g} to {p.max():.4g}); probabilities were expected"
        )


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


def _baseline(rule: BaselineRule, labels: np.ndarray, candidate: Predictions, base_rate: float | None) -> list[Check]:
    import numpy as np

    checks = []
    for metric in rule.metrics:
        name = f"{metric} better than the constant base rate by {rule.min_relative_improvement:.0%}"
        if base_rate is None or not 0 < base_rate < 1:
            detail = f"no base rate of the candidate's training data to compare {metric} with (got {base_rate})"
            checks.append(Check("baseline", name, False, detail))
            continue
        constant = bootstrap.metric(metric, labels, np.full(len(labels), base_rate))
        value = bootstrap.metric(metric, labels, candidate.p)
        relative = improvement(metric, value, constant) / constant
        passed = relative >= rule.min_relative_improvement
        detail = (
            f"candidate {metric} {value:.4f} vs {constant:.4f} for the constant base rate {base_rate:.3f}: "
            f"{relative:+.1%} {'>=' if passed else '<'} {rule.min_relative_improvement:.0%}"
        )
        numbers = {"candidate": value, "constant": constant, "base_rate": base_rate}
        checks.append(Check("baseline", name, passed, detail, relative, rule.min_relative_improvement, numbers))
    return checks


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
    found = bootstrap.paired(rule.metric, labels, candidate, champion, rule.resamples, rule.confidence, rule.seed)
    interval = found.describe(rule.confidence, rule.resamples)
    passed = found.low > rule.min_effect or not rule.require
    if rule.require:
        verdict = "clears" if passed else "does not clear"
        detail = f"{rule.metric} improvement {interval}: lower bound {verdict} {rule.min_effect:g}"
    else:
        detail = f"{rule.metric} improvement {interval} (reported, not required)"
    name = f"{rule.metric} improvement significant above {rule.min_effect:g}"
    numbers = {"improvement": found.observed, "ci_low": found.low, "ci_high": found.high}
    return Check("significance", name, passed, detail, found.low, rule.min_effect, numbers)


def _slices(
    rule: SliceRule,
    labels: np.ndarray,
    slices: Mapping[str, np.ndarray],
    candidate: np.ndarray,
    champion: np.ndarray,
    not_checked: list[str],
) -> list[Check]:
    checks: list[Check] = []
    eligible = []
    for column in rule.columns:
        if column not in slices:
            checks.append(Check("slice", f"{column} slices", False, f"slice column {column} is missing from the rows"))
            continue
        values = slices[column]
        small = []
        for value in sorted({v for v in values.tolist() if v is not None}, key=str):
            rows = values == value
            size, positives = int(rows.sum()), int(labels[rows].sum())
            if size < rule.min_support or min(positives, size - positives) < rule.min_class_rows:
                small.append(f"{value} ({size} rows, {positives} positive)")
            else:
                eligible.append((column, value, rows))
        if small:
            not_checked.append(
                f"slices of {column} below {rule.min_support} rows or {rule.min_class_rows} of a class: "
                + ", ".join(small)
            )
    each = 1 - (1 - rule.confidence) / max(len(eligible), 1)  # Bonferroni: the confidence holds for all
    for column, value, rows in eligible:
        y = labels[rows]
        observed, deltas = bootstrap.paired_deltas(
            rule.metric, y, candidate[rows], champion[rows], rule.resamples, rule.seed
        )
        found = bootstrap.normal(observed, deltas, each)
        passed = found.high >= -rule.tolerance
        cand = float(bootstrap.metric(rule.metric, y, candidate[rows]))
        champ = float(bootstrap.metric(rule.metric, y, champion[rows]))
        verdict = "within the tolerance" if passed else "regresses past the tolerance with confidence"
        detail = (
            f"slice {column}={value} ({int(rows.sum())} rows): {rule.metric} {cand:.4f} vs champion {champ:.4f}, "
            f"improvement {found.observed:+.4f}, CI [{found.low:+.4f}, {found.high:+.4f}] "
            f"({rule.confidence:.0%} over the {len(eligible)} slices checked): {verdict} {rule.tolerance:g}"
        )
        numbers = {
            "candidate": cand,
            "champion": champ,
            "size": float(rows.sum()),
            "ci_low": found.low,
            "ci_high": found.high,
            "confidence": each,
        }
        checks.append(
            Check("slice", f"{column}={value} {rule.metric}", passed, detail, found.high, -rule.tolerance, numbers)
        )
    return checks


def _operational(rule: OperationalRule, facts: Operational, not_checked: list[str]) -> list[Check]:
    checks = []
    if facts.latency_ratio is None:
        not_checked.append("scoring latency: there is no champion to measure it against")
    else:
        fast = facts.latency_ratio <= rule.max_latency_ratio
        own = f", {facts.latency_ms_per_10k:.0f} ms per 10k rows" if facts.latency_ms_per_10k is not None else ""
        checks.append(
            Check(
                "operational",
                f"scoring time <= {rule.max_latency_ratio:g}x the champion's",
                fast,
                f"the candidate scores in {facts.latency_ratio:.2f}x the champion's time{own} "
                f"({'within' if fast else 'over'} the {rule.max_latency_ratio:g}x budget)",
                facts.latency_ratio,
                rule.max_latency_ratio,
            )
        )
    small = facts.model_mb <= rule.max_model_mb
    checks.append(
        Check(
            "operational",
            f"model size <= {rule.max_model_mb:g} MB",
            small,
            f"the model is {facts.model_mb:.2f} MB "
            f"({'within' if small else 'over'} the {rule.max_model_mb:g} MB budget)",
            facts.model_mb,
            rule.max_model_mb,
        )
    )
    served = not facts.unserved_inputs
    checks.append(
        Check(
            "operational",
            "signature served by the feature service",
            served,
            "every input of the model's signature is served"
            if served
            else f"inputs the feature service does not serve: {', '.join(facts.unserved_inputs)}",
            float(len(facts.unserved_inputs)),
            0.0,
        )
    )
    return checks


def _present(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _check_metric(metric: str, kind: str) -> None:
    if metric not in HIGHER_IS_BETTER:
        raise RulesError(f"{kind} rule: unknown metric {metric!r} (known: {', '.join(HIGHER_IS_BETTER)})")


def _check_bootstrap(metric: str, resamples: int, confidence: float, kind: str) -> None:
    if metric not in bootstrap.METRICS:
        raise RulesError(f"{kind} supports {', '.join(bootstrap.METRICS)}, not {metric!r}")
    if resamples < 100:
        raise RulesError(f"{kind} needs at least 100 resamples, got {resamples}")
    if not 0.5 < confidence < 1:
        raise RulesError(f"{kind} confidence must be in (0.5, 1), got {confidence}")


def _entries(data: Mapping[str, object], kind: str) -> Sequence[Mapping[str, object]]:
    entries = data.get(kind) or []
    if not isinstance(entries, (list, tuple)):
        raise RulesError(f"{kind} is a list of rules, got {type(entries).__name__}")
    return entries


def _build(kind: type[T], entry: object, name: str) -> T:
    return build(kind, entry, f"{name} rule", RulesError)
