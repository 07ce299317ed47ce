"""The daily drift check of the flights model: gather, check, report with Evidently, decide, record.

`check` looks at what production saw in the `days` before a time `at`, as the champion sees it
(days an earlier champion scored are scored again from the features the log kept):

- **current**: the predictions log of the flights departing in the window;
- **reference** (`policy.reference`): by default `production`, the predictions log of the
  `reference_days` before the window, which the champion has seen in production; `training`, the
  champion's training-feature sample (`reference/training_features.json` on its run); or
  `seasonal`, the same window 52 weeks earlier (where the log reaches back that far);
- **data quality** (`include.mlops.data_quality`) of every model input, window against reference,
  and the training-serving skew the hourly scoring found (any is an incident),
  each statistic against its calibrated limit: a finding is an incident, not drift;
- **drift** of every model input and of the prediction, each against its own threshold; drifted
  inputs are weighed by the champion's permutation importance (`importance.json` on its run);
- **quality**: the part of the window whose labels landed before `at`, its realised ROC AUC
  against the champion's on its first production week, with a bootstrap interval.

The thresholds and limits are in `drift_calibration.yaml`, computed from January-June 2013 by
`python -m include.cli calibrate` (`include.flights.calibration`); the rules in
`drift_rules.yaml`. Evidently writes the drift report and the quality report; the policy of
`include.mlops.drift` decides, with the history of earlier checks. Every check is one run of the
MLflow experiment `drift_monitoring`: the reports as HTML and JSON, the decision, drift scores as
metrics and tags that the next checks read back as their history (the retrains asked for, what the
gate made of their candidates, escalations already sent).

Nothing is triggered here: the caller (the `drift_monitoring` DAG) triggers `training_pipeline`
and records the triggered run with `record_retrain`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import inference, model
from include.mlops import data_quality, drift, records, registry, tracking
from include.mlops.evaluation import Classifier, binary_metrics, positive_probability
from include.mlops.lake import Interval
from include.mlops.monitoring import DriftConfig, DriftConfigError, DriftResult
from include.mlops.settings import Settings, refuse_unknown, rule_set

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).with_name("drift_rules.yaml")
DEFAULT_CALIBRATION = Path(__file__).with_name("drift_calibration.yaml")
WINDOW_DAYS = 7
SEASON = timedelta(weeks=52)  # the replay clock's cycle: the same weekdays a year before
PREDICTION = inference.PREDICTION


@dataclass(frozen=True)
class Calibration:
    """Per-column drift thresholds (by reference kind) and data-quality limits, with where they came from."""

    drift: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # reference -> column -> threshold
    data_quality: data_quality.Limits = field(default_factory=dict)
    provenance: Mapping[str, object] = field(default_factory=dict)

    def thresholds(self, reference: str) -> Mapping[str, float]:
        if reference not in self.drift:
            raise drift.DriftRulesError(
                f"no drift thresholds are calibrated for the {reference!r} reference (calibrated: "
                f"{', '.join(self.drift) or 'none'}); run `python -m include.cli calibrate` on enough history"
            )
        return self.drift[reference]

    def to_dict(self) -> dict[str, object]:
        return {"provenance": dict(self.provenance), "drift": dict(self.drift), "data_quality": dict(self.data_quality)}


@dataclass(frozen=True)
class MonitorRules:
    report: DriftConfig
    policy: drift.DriftRules
    calibration: Calibration

    def to_dict(self) -> dict[str, object]:
        return {
            "report": self.report.to_dict(),
            "policy": self.policy.to_dict(),
            "calibration": self.calibration.to_dict(),
        }


def load_rules(rules: str | Path | Mapping[str, object] | None = None) -> MonitorRules:
    """The report settings, the policy and the calibration, from a mapping, a YAML file or text, or
    the default files. A section a mapping lacks is the default file's (`calibration`: a mapping or
    a YAML file, by default `drift_calibration.yaml`); a malformed one raises `DriftRulesError`
    naming the problem."""
    try:
        given = rule_set(rules, DEFAULT_RULES)
        defaults = rule_set(None, DEFAULT_RULES)
    except FileNotFoundError as error:
        raise drift.DriftRulesError(f"drift {error}") from None
    if not isinstance(given, Mapping):
        raise drift.DriftRulesError(f"drift rules must be a mapping with 'report' and 'policy', got {given!r}")
    rules = {**defaults, **given}
    refuse_unknown(rules, ("report", "policy", "calibration"), "drift rule sections", drift.DriftRulesError)
    try:
        report = DriftConfig.from_dict(rules.get("report") or {})
    except (DriftConfigError, TypeError) as error:
        raise drift.DriftRulesError(f"report: {error}") from None
    policy = drift.DriftRules.from_dict(rules.get("policy") or {})
    return MonitorRules(report, policy, load_calibration(rules.get("calibration")))


def load_calibration(calibration: str | Path | Mapping[str, object] | None = None) -> Calibration:
    try:
        data = rule_set(calibration, DEFAULT_CALIBRATION)
    except FileNotFoundError as error:
        raise drift.DriftRulesError(f"drift calibration: {error}") from None
    if not isinstance(data, Mapping):
        raise drift.DriftRulesError(
            f"a drift calibration is a mapping of 'provenance', 'drift' and 'data_quality', got {data!r}"
        )
    refuse_unknown(data, ("provenance", "drift", "data_quality"), "drift calibration sections", drift.DriftRulesError)
    return Calibration(data.get("drift") or {}, data.get("data_quality") or {}, data.get("provenance") or {})


def monitored(inputs: list[str], config: DriftConfig) -> tuple[list[str], list[str]]:
    """The model inputs drift and data quality look at: numeric and categorical."""
    columns = [c for c in inputs if c not in config.ignore]
    return [c for c in columns if c not in model.CATEGORICAL], [c for c in columns if c in model.CATEGORICAL]


def weights(importance: Mapping[str, float] | None, columns: list[str]) -> dict[str, float]:
    """Each monitored column's share of the model's importance (negative importances count as none;
    without importances every column weighs the same)."""
    if not importance:
        return dict.fromkeys(columns, 1.0 / len(columns)) if columns else {}
    raw = {c: max(float(importance.get(c, 0.0)), 0.0) for c in columns}
    total = sum(raw.values())
    return {c: value / total for c, value in raw.items()} if total else dict.fromkeys(columns, 1.0 / len(columns))


def observe(
    at: datetime,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    baseline: pd.DataFrame | None,
    inputs: list[str],
    importance: Mapping[str, float] | None,
    rules: MonitorRules,
    report: bool = True,
    baseline_window: str = "",
    recent: pd.DataFrame | None = None,
) -> tuple[drift.Observation, DriftResult | None]:
    """What one check sees: drift of the champion's inputs (and of its prediction) in `current`
    against `reference`, and their data quality against `recent` production (the limits were
    calibrated on the weeks before the window; the reference stands in when `recent` is None or too
    small, as in a model's first production days, so that a broken feed is caught from its first
    check), when each is large enough; and the realised quality of the `labelled` rows against the
    labelled `baseline` (its first production week; None when it has none yet). Returns the drift
    result too, with Evidently's report when `report`."""
    from include.mlops.monitoring import data_drift

    policy = rules.policy
    numeric, categorical = monitored(inputs, rules.report)
    columns = [*numeric, *categorical]
    share = weights(importance, columns)
    recent = reference if recent is None or len(recent) < policy.min_reference_rows else recent
    result, findings, unchecked, features, prediction = None, [], [], (), None
    if len(current) >= policy.min_current_rows and len(recent) >= policy.min_reference_rows:
        profiles = data_quality.profile(current, recent, numeric, categorical)
        findings, unchecked = data_quality.check(profiles, rules.calibration.data_quality)
    if len(current) >= policy.min_current_rows and len(reference) >= policy.min_reference_rows:
        thresholds = rules.calibration.thresholds(policy.reference)
        result = data_drift(current, reference, [*numeric, PREDICTION], categorical, thresholds, rules.report, report)
        features = tuple(
            drift.FeatureDrift(c.column, c.score, c.threshold, share.get(c.column, 0.0))
            for c in result.columns
            if c.column != PREDICTION
        )
        prediction = next(
            (drift.FeatureDrift(c.column, c.score, c.threshold, 0.0) for c in result.columns if c.column == PREDICTION),
            None,
        )
    findings += data_quality.serving_skew(current, inference.SKEW)
    if unchecked:
        log.debug("Data-quality statistics not checked: %s", "; ".join(unchecked))
    quality, why = None, ""
    if baseline is None:
        why = "the champion has no labelled first production week before this window yet"
    elif min(len(labelled), len(baseline)) < policy.min_labelled_rows:
        why = (
            f"{len(labelled)} labelled flights in the window and {len(baseline)} in the champion's first production "
            f"week, at least {policy.min_labelled_rows} needed"
        )
    elif labelled[model.LABEL].nunique() < 2 or baseline[model.LABEL].nunique() < 2:
        why = "one class only among the labelled flights"
    else:
        quality = drift.quality(
            policy,
            labelled[model.LABEL].to_numpy(),
            labelled[PREDICTION].to_numpy(),
            baseline[model.LABEL].to_numpy(),
            baseline[PREDICTION].to_numpy(),
            baseline_window,
        )
    observation = drift.Observation(
        at=at,
        current_rows=len(current),
        reference_rows=len(reference),
        features=features,
        not_judged={c: why for c, why in (result.not_judged if result else {}).items() if c != PREDICTION},
        weights=share,
        prediction=prediction,
        incidents=tuple(findings),
        quality=quality,
        quality_not_judged=why,
    )
    return observation, result


def reference_window(policy: drift.DriftRules, window: Interval) -> Interval | None:
    """Where the reference comes from in the predictions log (None: the training sample)."""
    if policy.reference == "production":
        return Interval(window.start - timedelta(days=policy.reference_days), window.start)
    if policy.reference == "seasonal":
        return Interval(window.start - SEASON, window.end - SEASON)
    return None


def baseline_window(policy: drift.DriftRules, start: datetime | None, window: Interval) -> Interval | None:
    """The champion's first production week, if it ended before the window starts (None otherwise)."""
    if start is None:
        return None
    baseline = Interval(start, start + timedelta(days=policy.baseline_days))
    return baseline if baseline.end <= window.start else None


def check(
    settings: Settings,
    at: datetime,
    days: int = WINDOW_DAYS,
    rules: MonitorRules | None = None,
    training_runs: drift.TrainingRuns | None = None,
    context: Mapping[str, str] | None = None,
) -> records.DriftCheck:
    """One drift check as of `at` over the `days` before it; recorded, and returned for the caller.

    Raises `inference.NoChampionError` when there is no champion to monitor.
    """
    from mlflow import MlflowClient

    from include.mlops.monitoring import classification_quality

    if days < 1:
        raise drift.DriftRulesError(f"the drift window must be at least one day, got {days}")
    rules = rules or load_rules()
    policy = rules.policy
    version, artifact, run_id = inference.champion(settings)
    experiment_id = tracking.connect(settings, records.DRIFT_EXPERIMENT)
    client = MlflowClient()
    loaded, inputs, _ = tracking.load_model(artifact)
    champion_run = client.get_run(run_id)
    try:
        threshold = records.CandidateRun.read(champion_run).threshold
    except records.RecordError as error:
        raise drift.DriftRulesError(f"the champion, version {version}, cannot be monitored: {error}") from None

    def logged(interval: Interval) -> pd.DataFrame:
        return _as_champion(inference.predictions(settings, interval), version, loaded, inputs)

    window = Interval(at - timedelta(days=days), at)
    current = logged(window)
    source = reference_window(policy, window)
    reference = logged(source) if source else training_reference(champion_run, loaded, inputs)
    production = reference_window(replace(policy, reference="production"), window)
    recent = reference if source == production else logged(production)
    labelled = inference.with_labels(settings, current, at)
    serving_since = production_start(client, settings.model_name, version)
    first = baseline_window(policy, serving_since, window)
    baseline = inference.with_labels(settings, logged(first), at) if first else None
    observation, result = observe(
        at,
        current,
        reference,
        labelled,
        baseline,
        inputs,
        importance(run_id),
        rules,
        report=True,
        baseline_window=first.key if first else "",
        recent=recent,
    )
    checks = _history(client, experiment_id, settings.model_name, at, dict(context or {}))
    past = [earlier.past() for earlier in checks]
    judged = judgements(client, settings.model_name)
    decision = drift.decide(
        policy, observation, drift.history(past, training_runs, serving_since, last_judged(judged, at))
    )
    alert = drift.escalation(policy, decision, at, past, _retrains(settings, judged, checks, past))

    q = decision.quality
    realised = {}
    if len(labelled) and labelled[model.LABEL].nunique() == 2:  # reported whether or not quality is judged
        realised = binary_metrics(labelled[model.LABEL].to_numpy(), labelled[PREDICTION].to_numpy(), threshold)
    metrics = {
        "current_rows": len(current),
        "online_served_rows": int(current["served_from"].eq("online").sum()) if "served_from" in current else 0,
        "skewed_rows": int(current[inference.SKEW].fillna("").ne("").sum()) if inference.SKEW in current else 0,
        "reference_rows": len(reference),
        "labelled_rows": len(labelled),
        **({"drift_share": decision.drift_share} if decision.drift_share is not None else {}),
        **{f"realised_{name}": value for name, value in realised.items() if name != "positive_rate"},
        **({f"baseline_{q.metric}": q.baseline, "quality_loss": q.loss} if q else {}),
        **({"quality_loss_low": q.low, "quality_loss_high": q.high} if q else {}),
        **({f"{records.DriftCheck.SCORE}{c.column}": c.score for c in result.columns} if result else {}),
    }
    recorded = records.DriftCheck(
        model=settings.model_name,
        at=at,
        action=decision.action,
        condition=decision.condition,
        champion_version=version,
        window=window.key,
        reference=source.key if source else "training",
        drifted=tuple(decision.drifted_features),
        incidents=tuple(f"{f.column} {f.check}" for f in decision.incidents),
        not_judged=tuple(decision.not_judged),
        reasons=tuple(decision.reasons),
        held_by=tuple(training_runs.busy) if training_runs and decision.action == "hold" else (),
        escalation=alert.message if alert else "",
        escalation_kind=alert.kind if alert else "",
        escalated=alert.key if alert else "",
        context=dict(context or {}),
        code_version=tracking.code_version(),
        metrics=metrics,
    )
    details = {
        "model": settings.model_name,
        "champion_version": version,
        "at": at.isoformat(),
        "window": window.key,
        "reference": source.key if source else "training sample",
        "baseline": first.key if first else None,
        "rules": rules.to_dict(),
        "decision": decision.to_dict(),
        "escalation": {"kind": alert.kind, "message": alert.message} if alert else None,
        "columns": [asdict(c) | {"weight": observation.weights.get(c.column)} for c in result.columns]
        if result
        else [],
        "sampled_rows": result.sampled_rows if result else None,
        **dict(context or {}),
    }
    reports = {}
    if result and result.snapshot is not None:
        reports[records.DriftCheck.DRIFT_REPORT] = result.snapshot.get_html_str(as_iframe=False)
        reports[records.DriftCheck.DRIFT_JSON] = result.snapshot.json()
    if len(labelled) and labelled[model.LABEL].nunique() == 2:
        quality_report = classification_quality(labelled, model.LABEL, PREDICTION)
        reports[records.DriftCheck.QUALITY_REPORT] = quality_report.get_html_str(as_iframe=False)
        reports[records.DriftCheck.QUALITY_JSON] = quality_report.json()
    run = recorded.write(client, experiment_id, details, reports)
    log.info("Drift check %s: %s (%s)", at.isoformat(), decision.action, "; ".join(decision.reasons))
    return replace(recorded, run_id=run, experiment_id=experiment_id).linked(settings.run_url)


def training_reference(run: Run, loaded: Classifier, inputs: list[str]) -> pd.DataFrame:
    """The champion's training-feature sample with the champion's predictions on it."""
    try:
        sample = records.CandidateRun.reference(run, model.CATEGORICAL)
    except records.RecordError as error:
        raise drift.DriftRulesError(f"the champion cannot be monitored: {error}") from None
    x = model.model_input(sample, inputs)
    return x.assign(**{PREDICTION: positive_probability(loaded, x)})


def importance(run_id: str) -> dict[str, float] | None:
    """The champion's permutation importances, logged at training; None if its run has none."""
    found = records.CandidateRun.importance(run_id)
    if found is None:
        log.warning("The champion's run %s has no importances: every input weighs the same", run_id)
    return found


def judgements(client: MlflowClient, name: str) -> list[records.GateJudgement]:
    """The latest judgement of each version of `name` the gate judged."""
    found = (records.GateJudgement.latest(v) for v in client.search_model_versions(f"name = '{name}'"))
    return [judgement for judgement in found if judgement is not None]


def production_start(client: MlflowClient, name: str, version: int) -> datetime | None:
    """When the version started serving, on the data's clock: the time the gate passed it (its
    promotion follows in the same run), else the time the alias moved to it."""
    found = client.get_model_version(name, str(version))
    judgement = records.GateJudgement.latest(found)
    if judgement is not None and judgement.passed:
        return judgement.decided_at
    return records.Registration.read(found).champion_since


def last_judged(judged: list[records.GateJudgement], at: datetime) -> datetime | None:
    """When the gate last judged one of the versions `judged`, up to `at` (data clock), whatever asked
    for it: a drift retrain, the weekly schedule or a person."""
    return max((j.decided_at for j in judged if j.decided_at <= at), default=None)


def _as_champion(current: pd.DataFrame, version: int, loaded: Classifier, inputs: list[str]) -> pd.DataFrame:
    """The rows as the champion sees them. Rows scored by an earlier champion are scored again by
    this one from the features the log kept, so that the prediction's drift and the realised quality
    are the champion's own; if the log lacks one of its inputs, those rows are left out."""
    if current.empty or (current["model_version"] == version).all():
        return current
    stale = current["model_version"] != version
    if not set(inputs) <= set(current.columns):
        log.warning("Left out %d rows scored by earlier versions: the log lacks some champion inputs", stale.sum())
        return current[~stale].reset_index(drop=True)
    current = current.copy()
    x = model.model_input(current[stale], inputs)
    current.loc[stale, PREDICTION] = positive_probability(loaded, x)
    log.info("Version %s scored again %d rows scored by earlier versions", version, stale.sum())
    return current


def record_retrain(settings: Settings, monitoring_run_id: str, training_run_id: str) -> None:
    """Note on a check's run that it triggered the training run `training_run_id` (Airflow's run id)."""
    from mlflow import MlflowClient

    tracking.connect(settings, records.DRIFT_EXPERIMENT)
    records.DriftCheck.record_retrain(MlflowClient(), monitoring_run_id, training_run_id)


def record_answer(settings: Settings, monitoring_run_id: str, answer: records.Answer) -> None:
    """Note on a check's run how a person answered its escalation (a mute's end is read back by the
    next checks)."""
    from mlflow import MlflowClient

    tracking.connect(settings, records.DRIFT_EXPERIMENT)
    answer.write_on_check(MlflowClient(), monitoring_run_id)


def _history(
    client: MlflowClient, experiment_id: str, name: str, at: datetime, context: Mapping[str, str]
) -> list[records.DriftCheck]:
    """The checks of `name` before this one, oldest first: those up to `at`, other than the
    earlier tries of this Airflow run (a retry or a cleared task judges afresh)."""
    checks = [
        records.DriftCheck.read(run) for run in records.search(client, experiment_id, records.DriftCheck.of_model(name))
    ]
    run_id = records.airflow_run_id(context)
    earlier = [c for c in checks if c.at <= at and (run_id is None or records.airflow_run_id(c.context) != run_id)]
    return sorted(earlier, key=lambda c: c.at)  # stable: start order


def _retrains(
    settings: Settings,
    judged: list[records.GateJudgement],
    checks: list[records.DriftCheck],
    past: list[drift.PastCheck],
) -> list[drift.Retrain]:
    """The retrains the monitor triggered, oldest first, with what the gate made of their candidates
    (`judged`: the latest judgement of each version the gate judged)."""
    triggers = [check for check in checks if check.retrain_run_id]
    if not triggers:
        return []
    by_run = {records.airflow_run_id(j.context): j for j in judged if records.airflow_run_id(j.context)}
    promoted = {
        move.to_version
        for move in registry.audit_trail(settings, settings.model_name)
        if move.action == "promote" and move.status == "FINISHED"
    }
    retrains = []
    for check in triggers:
        candidate = by_run.get(check.retrain_run_id)
        if candidate is None:
            retrains.append(drift.Retrain(check.at))  # still training, or its training failed
            continue
        outcome, number, decided = candidate.outcome, candidate.candidate_version, candidate.decided_at
        if outcome in ("reject", "error"):
            retrains.append(drift.Retrain(check.at, outcome, number, decided))
        elif number not in promoted:
            retrains.append(drift.Retrain(check.at))  # passed the gate, not promoted (yet)
        else:
            since = drift.judged_since(past, decided) + 1  # and this check
            retrains.append(drift.Retrain(check.at, outcome, number, decided, since))
    return retrains
