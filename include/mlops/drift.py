"""The drift monitor's policy: is the data broken, has the world moved, has quality dropped, and
did a retrain fail to help?

Pure and typed, like the gate's: what one check observed (data-quality findings, each feature's
drift score against its own threshold, weighted by what the model uses, and the realised quality
with its bootstrap interval), and the history of earlier checks and retrains, go in; a decision
with its reasons comes out. Nothing here reads data or talks to Airflow or MLflow.

`decide` answers one daily check:

- `incident` when a data-quality check found a broken feed (`include.mlops.data_quality`): a
  person is called and no retrain is asked for, since a model retrained on broken data is broken;
- `retrain` when the model's inputs drifted, meaning the drifted features carry at least
  `share_threshold` of the model's permutation importance (each feature drifts when its score
  reaches its own threshold, calibrated from the data's own noise), or when realised quality is
  below the champion's baseline by more than `quality_tolerance` with confidence (the lower bound
  of the bootstrap interval of the loss is above the tolerance), or when no model trained on fresher
  data has been tried in `refresh_days` (a refresh, counted from the latest of the champion's
  start in production, the last retrain asked and the last candidate the gate judged, whatever
  asked for it: with `training_pipeline`'s weekly schedule on, it never fires; in the replay of
  January-June 2013 without it, a model trained on fresher data was usually better, even when
  nothing drifted and quality held);
- `hold` when one of those holds but a retrain may not be asked for now: a training run is queued
  or running, or the last retrain was asked less than `cooldown_hours` ago;
- `skip` when neither drift nor quality can be judged (too few rows, too few labels);
- `no_drift` otherwise.

Quality is judged whenever enough labels exist, even when the window is too small for drift, and
drift whenever the window and the reference are large enough. Columns that could not be judged are
named in the reasons, with their share of the model's importance, never dropped from the share.

`escalation` answers whether a person must be called: on the first check of a data-quality
incident, or when the drift or quality condition persists although `escalate_after_retrains`
retrains in a row since it began did not help (each rejected by the gate, or promoted with the
condition still there `escalate_after_runs` checks later). Each condition escalates once. A
refresh is not a condition: nothing is wrong, so a refresh the gate rejects calls nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from include.mlops.data_quality import Finding
from include.mlops.settings import build

if TYPE_CHECKING:
    import numpy as np

    from include.mlops.gate import Judged

Action = Literal["skip", "no_drift", "retrain", "hold", "incident"]
Reference = Literal["production", "training", "seasonal"]
REFERENCES = ("production", "training", "seasonal")
EscalationKind = Literal["data_quality", "retrain_did_not_help"]
Rule = Literal["drift", "quality", "refresh"]


class DriftRulesError(ValueError):
    """The drift rules are malformed; the message names the problem."""


@dataclass(frozen=True)
class DriftRules:
    reference: Reference = "production"
    reference_days: int = 28
    share_threshold: float = 0.5
    quality_metric: str = "roc_auc"
    quality_tolerance: float = 0.0
    quality_confidence: float = 0.95
    quality_resamples: int = 1000
    baseline_days: int = 7
    min_current_rows: int = 1000
    min_reference_rows: int = 1000
    min_labelled_rows: int = 1000
    cooldown_hours: float = 168.0
    refresh_days: float | None = 14.0  # None: a champion is never retrained for its age alone
    escalate_after_retrains: int = 2
    escalate_after_runs: int = 3

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise DriftRulesError(f"reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if not 0 < self.share_threshold <= 1:
            raise DriftRulesError(f"share_threshold must be in (0, 1], got {self.share_threshold}")
        if self.quality_metric not in ("roc_auc", "log_loss", "brier"):
            raise DriftRulesError(f"quality_metric must be roc_auc, log_loss or brier, got {self.quality_metric!r}")
        if not 0.5 < self.quality_confidence < 1:
            raise DriftRulesError(f"quality_confidence must be in (0.5, 1), got {self.quality_confidence}")
        if self.quality_resamples < 100:
            raise DriftRulesError(f"quality_resamples must be at least 100, got {self.quality_resamples}")
        if self.cooldown_hours < 0:
            raise DriftRulesError("cooldown_hours must not be negative")
        if self.refresh_days is not None and self.refresh_days <= 0:
            raise DriftRulesError(f"refresh_days must be positive or null (never), got {self.refresh_days}")
        counts = (
            self.reference_days,
            self.baseline_days,
            self.min_current_rows,
            self.min_reference_rows,
            self.min_labelled_rows,
            self.escalate_after_retrains,
            self.escalate_after_runs,
        )
        if min(counts) < 1:
            raise DriftRulesError("the day spans, minimum row counts and escalation counts must be at least 1")

    @property
    def cooldown(self) -> timedelta:
        return timedelta(hours=self.cooldown_hours)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DriftRules:
        return build(cls, data, "drift policy", DriftRulesError)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureDrift:
    """One monitored column: its drift score against its own threshold, and its weight (its share
    of the model's permutation importance)."""

    column: str
    score: float
    threshold: float
    weight: float

    @property
    def drifted(self) -> bool:
        return self.score >= self.threshold


@dataclass(frozen=True)
class Quality:
    """Realised quality of the labelled window against the champion's baseline; `loss` is how much
    worse it is (in the metric's better direction) with its confidence interval."""

    metric: str
    realised: float
    baseline: float
    loss: float
    low: float
    high: float
    rows: int
    baseline_rows: int
    baseline_window: str


@dataclass(frozen=True)
class Observation:
    """What one check saw."""

    at: datetime
    current_rows: int
    reference_rows: int
    features: tuple[FeatureDrift, ...] = ()  # the judged columns
    not_judged: Mapping[str, str] = field(default_factory=dict)  # column -> why it could not be judged
    weights: Mapping[str, float] = field(default_factory=dict)  # every monitored column -> importance share
    prediction: FeatureDrift | None = None  # the model's output: reported, not a rule
    incidents: tuple[Finding, ...] = ()
    quality: Quality | None = None
    quality_not_judged: str = ""  # why quality was not judged, when it was not

    @property
    def drifted_features(self) -> list[str]:
        return sorted(f.column for f in self.features if f.drifted)

    @property
    def drift_share(self) -> float:
        """The share of the model's importance carried by drifted features (columns not judged
        count in the denominator: they are reported, not dropped)."""
        return sum(f.weight for f in self.features if f.drifted) / (sum(self.weights.values()) or 1.0)

    @property
    def not_judged_share(self) -> float:
        return sum(self.weights.get(c, 0.0) for c in self.not_judged) / (sum(self.weights.values()) or 1.0)


@dataclass(frozen=True)
class TrainingRuns:
    """The training runs under way when a check runs, by their orchestrator's run id."""

    busy: tuple[str, ...] = ()  # queued, or training: a new retrain would duplicate them
    waiting: tuple[str, ...] = ()  # waiting for their window's features, which may be long in coming


@dataclass(frozen=True)
class History:
    """What happened before this check."""

    last_trigger_at: datetime | None = None
    training: TrainingRuns = TrainingRuns()  # the busy ones hold a new retrain; the waiting ones are named
    champion_since: datetime | None = None  # when the champion started serving
    last_candidate_at: datetime | None = None  # when the gate last judged a candidate, whatever asked for it


@dataclass(frozen=True)
class DriftDecision:
    action: Action
    reasons: tuple[str, ...]
    drifted_features: tuple[str, ...]
    drift_share: float | None  # None: drift not judged
    quality: Quality | None
    incidents: tuple[Finding, ...] = ()
    not_judged: Mapping[str, str] = field(default_factory=dict)
    fired: tuple[Rule, ...] = ()  # the rules that asked for a retrain (now, or once the hold ends)

    @property
    def condition(self) -> bool:
        """Drift or quality loss holds, whether or not a retrain is asked for now (a refresh is not
        a condition: nothing is wrong)."""
        return bool({"drift", "quality"} & set(self.fired))

    @property
    def quality_loss(self) -> float | None:
        return self.quality.loss if self.quality else None

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "condition": self.condition,
            "fired": list(self.fired),
            "reasons": list(self.reasons),
            "drifted_features": list(self.drifted_features),
            "drift_share": self.drift_share,
            "quality": asdict(self.quality) if self.quality else None,
            "incidents": [finding.to_dict() for finding in self.incidents],
            "not_judged": dict(self.not_judged),
        }


@dataclass(frozen=True)
class PastCheck:
    """What an earlier check decided, as the next checks read it back."""

    at: datetime
    action: Action
    condition: bool
    asked_retrain: bool = False  # it triggered a training run
    escalated: str = ""  # the key of the condition it escalated, if it did
    muted_until: datetime | None = None  # a person answered its escalation: no alert of that kind until then


@dataclass(frozen=True)
class Retrain:
    """A retrain the monitor asked for, and what became of its candidate."""

    triggered_at: datetime
    outcome: Literal["pending"] | Judged = "pending"
    version: int | None = None
    decided_at: datetime | None = None
    checks_since_promotion: int = 0

    @property
    def helped(self) -> bool | None:
        """None while its candidate is not judged, or promoted too recently to tell."""
        if self.outcome == "pending":
            return None
        return self.outcome in ("promote", "first-model")


@dataclass(frozen=True)
class Escalation:
    kind: EscalationKind
    message: str
    key: str  # the condition it is about: each condition escalates once


def history(
    checks: Sequence[PastCheck],
    training: TrainingRuns | None = None,
    champion_since: datetime | None = None,
    last_candidate_at: datetime | None = None,
) -> History:
    """The history a check decides with: when the last retrain was asked for."""
    triggers = [c.at for c in checks if c.asked_retrain]
    return History(triggers[-1] if triggers else None, training or TrainingRuns(), champion_since, last_candidate_at)


def condition_since(checks: Sequence[PastCheck], at: datetime) -> datetime:
    """When the condition that holds at `at` began: the first check of the unbroken run of checks
    (oldest first in `checks`) that saw it; skipped checks and incidents neither start nor break it."""
    since = at
    for check in reversed(checks):
        if check.action in ("skip", "incident"):
            continue
        if not check.condition:
            break
        since = check.at
    return since


def incident_since(checks: Sequence[PastCheck], at: datetime) -> datetime:
    """When the data-quality incident that holds at `at` began (skipped checks do not break it)."""
    since = at
    for check in reversed(checks):
        if check.action == "skip":
            continue
        if check.action != "incident":
            break
        since = check.at
    return since


def judged_since(checks: Sequence[PastCheck], since: datetime) -> int:
    """How many checks at or after `since` judged (did not skip)."""
    return sum(1 for c in checks if c.at >= since and c.action != "skip")


def quality(
    rules: DriftRules,
    labels: np.ndarray,
    predictions: np.ndarray,
    baseline_labels: np.ndarray,
    baseline_predictions: np.ndarray,
    baseline_window: str,
    seed: int = 0,
) -> Quality:
    """The realised quality of the labelled window against the baseline's, with the bootstrap
    interval of the loss (each set of rows resampled on its own)."""
    from include.mlops import bootstrap

    metric = rules.quality_metric
    gain = bootstrap.unpaired(
        metric,
        baseline_labels,
        baseline_predictions,
        labels,
        predictions,
        rules.quality_resamples,
        rules.quality_confidence,
        seed,
    )  # how much better the baseline is: the loss
    return Quality(
        metric=metric,
        realised=float(bootstrap.metric(metric, labels, predictions)),
        baseline=float(bootstrap.metric(metric, baseline_labels, baseline_predictions)),
        loss=gain.observed,
        low=gain.low,
        high=gain.high,
        rows=len(labels),
        baseline_rows=len(baseline_labels),
        baseline_window=baseline_window,
    )


def decide(rules: DriftRules, observation: Observation, history: History) -> DriftDecision:
    """The action for one daily check; the reasons say what was seen and why it led there."""
    o = observation
    drift_judged = o.current_rows >= rules.min_current_rows and o.reference_rows >= rules.min_reference_rows
    drifted = tuple(o.drifted_features) if drift_judged else ()
    share = o.drift_share if drift_judged else None
    not_judged = dict(o.not_judged) if drift_judged else {}

    def decision(action: Action, reasons: list[str], fired: tuple[Rule, ...] = ()) -> DriftDecision:
        return DriftDecision(action, tuple(reasons), drifted, share, o.quality, o.incidents, not_judged, fired)

    seen = []
    if drift_judged:
        seen.append(_drift_seen(o))
        if o.not_judged:
            seen.append(
                f"not judged ({o.not_judged_share:.0%} of the importance): "
                + ", ".join(f"{column} ({why})" for column, why in sorted(o.not_judged.items()))
            )
    else:
        seen.append(
            f"drift not judged: {o.current_rows} current rows (at least {rules.min_current_rows}) and "
            f"{o.reference_rows} reference rows (at least {rules.min_reference_rows})"
        )
    seen.append(_quality_seen(rules, o.quality) if o.quality else f"quality not judged: {o.quality_not_judged}")

    if o.incidents:
        incident = [
            "data-quality incident: " + "; ".join(f.detail for f in o.incidents),
            "no retrain on broken data: a person must look",
        ]
        return decision("incident", incident + seen)
    if not drift_judged and o.quality is None:
        return decision("skip", seen)

    fired: list[Rule] = []
    reasons = []
    if drift_judged and share is not None and share >= rules.share_threshold:
        fired.append("drift")
        reasons.append(f"drift: {_drift_seen(o)}, at least {rules.share_threshold:.0%} asks for a retrain")
    if o.quality is not None and o.quality.low > rules.quality_tolerance:
        fired.append("quality")
        reasons.append(f"quality loss: {_quality_seen(rules, o.quality)}")
    fresh = {
        "the champion has served since": history.champion_since,
        "the last retrain was asked at": history.last_trigger_at,
        "the gate last judged a candidate at": history.last_candidate_at,
    }
    latest = None  # the first named wins a tie: a promotion is the champion's start
    for what, at in fresh.items():
        if at is not None and (latest is None or at > latest[0]):
            latest = (at, what)
    if rules.refresh_days is not None and latest and o.at - latest[0] >= timedelta(days=rules.refresh_days):
        fired.append("refresh")
        since, what = latest
        reasons.append(
            f"refresh: {what} {since.isoformat()}, {(o.at - since) / timedelta(days=1):.1f} days ago; "
            f"at least {rules.refresh_days:g} asks for a model trained on fresher data"
        )
    if not reasons:
        return decision("no_drift", seen)
    seen = [what for what in seen if not any(what in reason for reason in reasons)]  # nothing said twice
    if history.training.waiting:
        seen.append(
            f"not held by {', '.join(history.training.waiting)} waiting for features (a retrain's window may have them)"
        )
    if history.training.busy:
        hold = f"a training run is already queued or running: {', '.join(history.training.busy)}"
        return decision("hold", [*reasons, hold, *seen], tuple(fired))
    if history.last_trigger_at is not None and o.at - history.last_trigger_at < rules.cooldown:
        until = history.last_trigger_at + rules.cooldown
        hold = (
            f"cooling down after the retrain asked at {history.last_trigger_at.isoformat()} (until {until.isoformat()})"
        )
        return decision("hold", [*reasons, hold, *seen], tuple(fired))
    return decision("retrain", [*reasons, *seen], tuple(fired))


def escalation(
    rules: DriftRules, decision: DriftDecision, at: datetime, checks: Sequence[PastCheck], retrains: Sequence[Retrain]
) -> Escalation | None:
    """The alert to send, or None: a new data-quality incident, or a condition that retraining did
    not fix, unless a person muted that kind of escalation until after `at` (their answer to an
    earlier one). `checks` are the earlier checks (oldest first), `retrains` the retrains asked for."""
    sent = {c.escalated for c in checks if c.escalated}
    muted = {c.escalated.split()[0] for c in checks if c.escalated and c.muted_until and c.muted_until > at}
    if decision.action == "incident":
        if "data_quality" in muted:
            return None
        since = incident_since(checks, at)
        key = f"data_quality {since.isoformat()}"
        if key in sent:
            return None
        found = "; ".join(f.detail for f in decision.incidents)
        return Escalation("data_quality", f"data-quality incident since {since.isoformat()}: {found}", key)
    if not decision.condition:
        return None
    since = condition_since(checks, at)
    key = f"retrain_did_not_help {since.isoformat()}"
    if "retrain_did_not_help" in muted:
        return None
    recent = [r for r in retrains if r.triggered_at >= since][-rules.escalate_after_retrains :]
    if key in sent or len(recent) < rules.escalate_after_retrains:
        return None
    if not all(_did_not_help(rules, r) for r in recent):
        return None
    what = condition_seen(decision.reasons)
    tried = ", ".join(_tried(r) for r in recent)
    return Escalation(
        "retrain_did_not_help",
        f"the condition persists since {since.isoformat()} ({what}) after {len(recent)} retrains: {tried}",
        key,
    )


def condition_seen(reasons: Sequence[str]) -> str:
    """The reasons of a decision that say what the condition is (drift, a loss of quality), joined:
    what a retrain or an escalation names as its cause."""
    return "; ".join(reason for reason in reasons if reason.startswith(("drift:", "quality loss:")))


def _did_not_help(rules: DriftRules, retrain: Retrain) -> bool:
    if retrain.helped is None:
        return False
    return not retrain.helped or retrain.checks_since_promotion >= rules.escalate_after_runs


def _tried(retrain: Retrain) -> str:
    asked = f"asked {retrain.triggered_at.isoformat()}"
    if retrain.outcome in ("reject", "error"):
        verdict = "rejected by the gate" if retrain.outcome == "reject" else "not judged (gate error)"
        return f"{asked}: version {retrain.version} {verdict}" if retrain.version else f"{asked}: no candidate"
    held = f"the condition still held {retrain.checks_since_promotion} checks later"
    return f"{asked}: version {retrain.version} promoted, {held}"


def _drift_seen(o: Observation) -> str:
    drifted = sorted((f for f in o.features if f.drifted), key=lambda f: -f.weight)
    notes = [", ".join(f"{f.column} {f.score:.2f} >= {f.threshold:.2f}" for f in drifted[:5])] if drifted else []
    if len(drifted) > 5:
        notes[0] += f" and {len(drifted) - 5} more"
    if o.prediction is not None:  # the report tests the prediction beside the features, and counts it
        p = o.prediction
        notes.append(
            f"{len(drifted) + p.drifted} of {len(o.features) + 1} columns in the report, which also tests the "
            f"prediction: {'drifted' if p.drifted else 'not drifted'}, {p.score:.2f} vs {p.threshold:.2f}"
        )
    listed = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"{len(drifted)} of {len(o.features) + len(o.not_judged)} features drifted{listed}, "
        f"{o.drift_share:.0%} of the model's importance"
    )


def _quality_seen(rules: DriftRules, q: Quality) -> str:
    verdict = "worse" if q.loss > 0 else "better"
    beyond = "beyond" if q.low > rules.quality_tolerance else "not beyond"
    return (
        f"realised {q.metric} {q.realised:.4f} on {q.rows} labelled flights is {abs(q.loss):.4f} {verdict} than "
        f"the champion's {q.baseline:.4f} on its first production week {q.baseline_window} ({q.baseline_rows} "
        f"flights); {rules.quality_confidence:.0%} CI of the loss [{q.low:+.4f}, {q.high:+.4f}], {beyond} the "
        f"tolerance {rules.quality_tolerance:g}"
    )
