"""The drift monitor's policy: does production ask for a retrain, and did a retrain fail to help?

Pure and typed, like the gate's: the per-feature drift verdicts of a report (Evidently's, gathered
elsewhere), the realised quality of the labelled part of the window and the recent history go in;
a decision with its reasons comes out. Nothing here reads data or talks to Airflow or MLflow.

`decide` answers one daily check:

- `skip` when the window is too small to judge (fewer current or reference rows than the minimum);
- `retrain` when the share of drifted features reaches `share_threshold`, or one feature's drift
  score reaches `severe_score` (a unit change, a broken feed: one column moved by more than the
  reference's whole spread), or any of the named `key_features` drifted (`prediction` names the
  model's output), or the realised `quality_metric` (with at least `min_labelled_rows` labels) is
  below the champion's validation figure by more than `quality_tolerance`;
- `hold` when one of those holds but a retrain may not be asked for now: a training run is queued
  or running, or the last trigger is more recent than `cooldown`;
- `no_drift` otherwise.

`escalation` answers whether a person must be called: the condition still holds and either the
retrain it triggered was rejected by the gate, or `escalate_after_runs` checks have passed since
the retrained model was promoted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Literal

Action = Literal["skip", "no_drift", "retrain", "hold"]
PREDICTION = "prediction"  # in `key_features`: the model's output distribution
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}


class DriftRulesError(ValueError):
    """The drift rules are malformed; the message names the problem."""


@dataclass(frozen=True)
class DriftRules:
    share_threshold: float = 0.5
    severe_score: float | None = None
    key_features: tuple[str, ...] = ()
    quality_metric: str = "roc_auc"
    quality_tolerance: float = 0.03
    min_current_rows: int = 1000
    min_reference_rows: int = 1000
    min_labelled_rows: int = 500
    cooldown_hours: float = 72.0
    escalate_after_runs: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_features", tuple(self.key_features))
        if not 0 < self.share_threshold <= 1:
            raise DriftRulesError(f"share_threshold must be in (0, 1], got {self.share_threshold}")
        if self.quality_metric not in HIGHER_IS_BETTER:
            raise DriftRulesError(
                f"quality_metric must be one of {', '.join(HIGHER_IS_BETTER)}, got {self.quality_metric!r}"
            )
        if self.severe_score is not None and self.severe_score <= 0:
            raise DriftRulesError(f"severe_score must be positive (or null), got {self.severe_score}")
        if self.quality_tolerance < 0 or self.cooldown_hours < 0:
            raise DriftRulesError("quality_tolerance and cooldown_hours must not be negative")
        if min(self.min_current_rows, self.min_reference_rows, self.min_labelled_rows, self.escalate_after_runs) < 1:
            raise DriftRulesError("the minimum row counts and escalate_after_runs must be at least 1")

    @property
    def cooldown(self) -> timedelta:
        return timedelta(hours=self.cooldown_hours)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DriftRules:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise DriftRulesError(f"unknown drift rules: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as error:
            raise DriftRulesError(str(error)) from None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """One check: the report's verdicts and sizes, and the realised quality where labels landed."""

    at: datetime
    current_rows: int
    reference_rows: int
    drifted: Mapping[str, bool]  # feature -> drift detected
    labelled_rows: int = 0
    realised: float | None = None  # the quality metric on the labelled rows
    champion_validation: float | None = None  # the same metric on the champion's validation set
    scores: Mapping[str, float] = field(default_factory=dict)  # feature -> drift score
    prediction_drifted: bool = False

    @property
    def drifted_features(self) -> list[str]:
        return sorted(name for name, drifted in self.drifted.items() if drifted)

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.drifted) if self.drifted else 0.0


@dataclass(frozen=True)
class History:
    """What happened before this check."""

    last_trigger_at: datetime | None = None
    training_active: bool = False


@dataclass(frozen=True)
class DriftDecision:
    action: Action
    reasons: tuple[str, ...]
    drifted_features: tuple[str, ...]
    drift_share: float
    quality_loss: float | None  # how far realised quality is below the champion's (None: not judged)

    @property
    def condition(self) -> bool:
        """Drift or quality loss holds, whether or not a retrain is asked for now."""
        return self.action in ("retrain", "hold")

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"condition": self.condition}


@dataclass(frozen=True)
class PastCheck:
    """What an earlier check decided, as the next checks read it back."""

    at: datetime
    action: Action
    condition: bool
    asked_retrain: bool = False  # it triggered a training run


def history(checks: Sequence[PastCheck], training_active: bool = False) -> History:
    """The history a check decides with: when the last retrain was asked for."""
    triggers = [c.at for c in checks if c.asked_retrain]
    return History(last_trigger_at=triggers[-1] if triggers else None, training_active=training_active)


def condition_since(checks: Sequence[PastCheck], at: datetime) -> datetime:
    """When the condition that holds at `at` began: the first check of the unbroken run of checks
    (oldest first in `checks`) that saw it; skipped checks neither start nor break it."""
    since = at
    for check in reversed(checks):
        if check.action == "skip":
            continue
        if not check.condition:
            break
        since = check.at
    return since


def judged_since(checks: Sequence[PastCheck], since: datetime) -> int:
    """How many checks at or after `since` judged (did not skip)."""
    return sum(1 for c in checks if c.at >= since and c.action != "skip")


@dataclass(frozen=True)
class Retrain:
    """The last retrain the monitor asked for, and what became of its candidate."""

    triggered_at: datetime
    outcome: Literal["pending", "reject", "promote", "first-model"] = "pending"
    version: int | None = None
    decided_at: datetime | None = None
    checks_since_promotion: int = 0


def decide(rules: DriftRules, observation: Observation, history: History) -> DriftDecision:
    """The action for one daily check; the reasons say what was seen and why it led there."""
    drifted, share = tuple(observation.drifted_features), observation.drift_share
    if observation.current_rows < rules.min_current_rows or observation.reference_rows < rules.min_reference_rows:
        reason = (
            f"too few rows to judge drift: {observation.current_rows} current (at least {rules.min_current_rows}) "
            f"and {observation.reference_rows} reference (at least {rules.min_reference_rows})"
        )
        return DriftDecision("skip", (reason,), drifted, share, None)

    reasons = []
    if observation.drifted and share >= rules.share_threshold:
        reasons.append(
            f"{len(drifted)} of {len(observation.drifted)} features drifted ({share:.0%}, threshold "
            f"{rules.share_threshold:.0%})"
        )
    severe = sorted(name for name, score in observation.scores.items() if _severe(rules, score))
    if severe:
        worst = sorted(severe, key=lambda name: -observation.scores[name])
        more = f" and {len(worst) - 3} more" if len(worst) > 3 else ""
        reasons.append(
            f"severe drift (score >= {rules.severe_score:g}): "
            + ", ".join(f"{name} {observation.scores[name]:.2f}" for name in worst[:3])
            + more
        )
    key = [
        name
        for name in rules.key_features
        if (observation.prediction_drifted if name == PREDICTION else observation.drifted.get(name))
    ]
    if key:
        reasons.append(f"key features drifted: {', '.join(key)}")
    loss = _quality_loss(rules, observation)
    if loss is not None and loss > rules.quality_tolerance:
        reasons.append(
            f"realised {rules.quality_metric} {observation.realised:.4f} on {observation.labelled_rows} labelled "
            f"flights is {loss:.4f} worse than the champion's validation {observation.champion_validation:.4f} "
            f"(tolerance {rules.quality_tolerance:g})"
        )
    if not reasons:
        seen = f"{len(drifted)} of {len(observation.drifted)} features drifted ({share:.0%})"
        return DriftDecision("no_drift", (seen,), drifted, share, loss)
    if history.training_active:
        return DriftDecision("hold", (*reasons, "a training run is already queued or running"), drifted, share, loss)
    if history.last_trigger_at is not None and observation.at - history.last_trigger_at < rules.cooldown:
        until = history.last_trigger_at + rules.cooldown
        hold = (
            f"cooling down after the retrain asked at {history.last_trigger_at.isoformat()} (until {until.isoformat()})"
        )
        return DriftDecision("hold", (*reasons, hold), drifted, share, loss)
    return DriftDecision("retrain", tuple(reasons), drifted, share, loss)


def escalation(
    rules: DriftRules, decision: DriftDecision, condition_since: datetime | None, last: Retrain | None
) -> str | None:
    """The alert to send, or None: the condition persists although a retrain was tried."""
    if not decision.condition or last is None or last.outcome == "pending":
        return None
    since = f" since {condition_since.isoformat()}" if condition_since else ""
    what = "; ".join(reason for reason in decision.reasons if not _is_hold(reason))
    if last.outcome == "reject":
        return (
            f"drift persists{since} ({what}): the retrain asked at {last.triggered_at.isoformat()} produced "
            f"version {last.version}, which the promotion gate rejected"
        )
    if last.checks_since_promotion >= rules.escalate_after_runs:
        return (
            f"drift persists{since} ({what}): still present {last.checks_since_promotion} checks after version "
            f"{last.version} was promoted on {last.decided_at.isoformat() if last.decided_at else 'an unknown date'}"
        )
    return None


def _quality_loss(rules: DriftRules, observation: Observation) -> float | None:
    realised, validation = observation.realised, observation.champion_validation
    if observation.labelled_rows < rules.min_labelled_rows or realised is None or validation is None:
        return None
    if math.isnan(realised) or math.isnan(validation):
        return None
    return validation - realised if HIGHER_IS_BETTER[rules.quality_metric] else realised - validation


def _severe(rules: DriftRules, score: float) -> bool:
    return rules.severe_score is not None and not math.isnan(score) and score >= rules.severe_score


def _is_hold(reason: str) -> bool:
    return reason.startswith(("cooling down", "a training run is already"))
