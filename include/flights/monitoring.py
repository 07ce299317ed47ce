"""The daily drift check of the flights model: gather, report with Evidently, decide, record.

`check` compares what production saw with what the champion was trained on, as of a time `at`:

- **reference**: the champion's training-feature sample, kept with its model
  (`reference/training_features.json` on its MLflow run), scored by the champion for the
  prediction's reference distribution;
- **current**: the predictions log of the flights departing in the `days` before `at`;
- **quality**: the part of the current window whose labels landed before `at`, its realised
  quality against the champion's validation figure (the same metric on its validation split).

Evidently writes the drift report (every monitored feature and the prediction) and the quality
report; the policy of `include.mlops.drift` decides, with the history of earlier checks. Every
check is one run of the MLflow experiment `drift_monitoring`: the reports as HTML and JSON, the
decision, drift scores as metrics and tags that the next checks read back as their history (the
last retrain asked for, whether a training run it triggered was gated, escalations already sent).

Nothing is triggered here: the caller (the `drift_monitoring` DAG) triggers `training_pipeline`
and records the triggered run with `record_retrain`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import inference, model
from include.mlops import drift, registry, tracking
from include.mlops.evaluation import binary_metrics
from include.mlops.lake import Interval
from include.mlops.monitoring import DriftConfig, DriftConfigError, DriftResult
from include.mlops.settings import Settings, rule_set

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).with_name("drift_rules.yaml")
EXPERIMENT = "drift_monitoring"
WINDOW_DAYS = 7
REFERENCE_ARTIFACT = "reference/training_features.json"
TRUE, FALSE = "true", "false"


@dataclass(frozen=True)
class MonitorRules:
    report: DriftConfig
    policy: drift.DriftRules

    def to_dict(self) -> dict[str, object]:
        return {"report": self.report.to_dict(), "policy": self.policy.to_dict()}


def load_rules(rules: str | Path | Mapping[str, object] | None = None) -> MonitorRules:
    """The report settings and the policy, from a mapping, a YAML file or text, or the default file.

    Sections missing from a mapping keep their defaults; a malformed one raises
    `DriftRulesError` naming the problem.
    """
    try:
        rules = rule_set(rules, DEFAULT_RULES)  # type: ignore[assignment]
    except FileNotFoundError as error:
        raise drift.DriftRulesError(f"drift {error}") from None
    if not isinstance(rules, Mapping):
        raise drift.DriftRulesError(f"drift rules must be a mapping with 'report' and 'policy', got {rules!r}")
    unknown = set(rules) - {"report", "policy"}
    if unknown:
        raise drift.DriftRulesError(f"unknown drift rule sections: {', '.join(sorted(unknown))}")
    try:
        report = DriftConfig.from_dict(rules.get("report") or {})
    except (DriftConfigError, TypeError) as error:
        raise drift.DriftRulesError(f"report: {error}") from None
    return MonitorRules(report, drift.DriftRules.from_dict(rules.get("policy") or {}))


def reference(run: Run, loaded: object, inputs: list[str]) -> pd.DataFrame:
    """The champion's training-feature sample with the champion's predictions on it."""
    from mlflow import MlflowClient

    run_id = run.info.run_id
    try:
        sample = MlflowClient().load_table(run.info.experiment_id, REFERENCE_ARTIFACT, run_ids=[run_id])
    except Exception as error:  # MLflow raises a bare MlflowException when the table is missing
        raise drift.DriftRulesError(
            f"the champion's run {run_id} has no {REFERENCE_ARTIFACT}: it cannot be monitored ({error})"
        ) from None
    # Categorical columns were logged as text, missing values included.
    sample = sample.replace({c: {"None": None, "nan": None} for c in model.CATEGORICAL})
    x = model.model_input(sample, inputs)
    return x.assign(**{inference.PREDICTION: loaded.predict_proba(x)[:, 1]})  # type: ignore[attr-defined]


def check(
    settings: Settings,
    at: datetime,
    days: int = WINDOW_DAYS,
    rules: MonitorRules | None = None,
    training_active: bool = False,
    context: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """One drift check as of `at` over the `days` before it; recorded, and returned for the caller.

    Raises `inference.NoChampionError` when there is no champion to monitor.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from include.mlops.monitoring import classification_quality

    if days < 1:
        raise drift.DriftRulesError(f"the drift window must be at least one day, got {days}")
    rules = rules or load_rules()
    version, artifact, run_id = inference.champion(settings)
    experiment_id = tracking.connect(settings, EXPERIMENT)
    client = MlflowClient()
    loaded, inputs, _ = tracking.load_model(artifact)
    window = Interval(at - timedelta(days=days), at)
    current = _as_champion(inference.predictions(settings, window), version, loaded, inputs)
    labelled = inference.with_labels(settings, current, at) if len(current) else current
    champion_run = client.get_run(run_id)
    ref = reference(champion_run, loaded, inputs)
    validation = champion_run.data.metrics.get(rules.policy.quality_metric)
    threshold = float(champion_run.data.params.get("threshold", 0.5))

    observation, result, realised = observe(
        at, current, labelled, ref, inputs, validation, threshold, rules, report=True
    )
    checks = _history(client, experiment_id, settings.model_name, at, (context or {}).get("airflow.run_id"))
    past = [_past(c) for c in checks]
    decision = drift.decide(rules.policy, observation, drift.history(past, training_active))
    retrain = _last_retrain(settings, client, checks)
    alert = drift.escalation(rules.policy, decision, drift.condition_since(past, at), retrain)
    escalated_for = retrain.run_id if alert and retrain else ""
    if alert and any(c.data.tags.get("drift.escalated_for") == escalated_for for c in checks):
        log.info("Escalation for the retrain %s was already sent; not repeated: %s", escalated_for, alert)
        alert, escalated_for = None, ""

    run = client.create_run(
        experiment_id,
        run_name=f"drift {settings.model_name} v{version} {at:%Y-%m-%d %H:%M}",
        tags={
            "drift.model": settings.model_name,
            "drift.at": at.isoformat(),
            "drift.action": decision.action,
            "drift.condition": TRUE if decision.condition else FALSE,
            "drift.champion_version": str(version),
            "drift.window": window.key,
            "drift.drifted": ", ".join(decision.drifted_features)[:5000],
            "drift.reasons": "; ".join(decision.reasons)[:5000],
            "drift.escalation": alert or "",
            "drift.escalated_for": escalated_for,
            **tracking.code_version(),
            **dict(context or {}),
        },
    ).info.run_id
    metrics = {
        "current_rows": len(current),
        "reference_rows": len(ref),
        "labelled_rows": len(labelled),
        "drift_share": decision.drift_share,
        **({f"realised_{k}": v for k, v in realised.items()} if realised else {}),
        **({f"champion_validation_{rules.policy.quality_metric}": validation} if validation is not None else {}),
        **({"quality_loss": decision.quality_loss} if decision.quality_loss is not None else {}),
        **({f"drift_score.{c.column}": c.score for c in result.columns} if result else {}),
    }
    stamp = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(key, float(value), stamp, 0) for key, value in metrics.items()])
    record = {
        "model": settings.model_name,
        "champion_version": version,
        "at": at.isoformat(),
        "window": window.key,
        "rules": rules.to_dict(),
        "decision": decision.to_dict(),
        "escalation": alert,
        "columns": [c.__dict__ for c in result.columns] if result else [],
        "sampled_rows": result.sampled_rows if result else None,
        "not_judged": result.empty if result else [],  # no value in the window or the reference
        "realised": realised,
        "champion_validation": validation,
        **dict(context or {}),
    }
    client.log_text(run, json.dumps(record, indent=2, default=str), "decision.json")
    if result:
        client.log_text(run, result.snapshot.get_html_str(as_iframe=False), "drift/report.html")
        client.log_text(run, result.snapshot.json(), "drift/report.json")
    if realised:
        quality = classification_quality(labelled, model.LABEL, inference.PREDICTION)
        client.log_text(run, quality.get_html_str(as_iframe=False), "quality/report.html")
        client.log_text(run, quality.json(), "quality/report.json")
    client.set_terminated(run, "FINISHED")

    reason = f"drift_monitoring {at:%Y-%m-%d}: " + "; ".join(decision.reasons)
    report_url = settings.run_url(experiment_id, run) + "/artifacts/drift/report.html" if result else None
    log.info("Drift check %s: %s (%s)", at.isoformat(), decision.action, "; ".join(decision.reasons))
    return {
        "model": settings.model_name,
        "champion_version": version,
        "at": at.isoformat(),
        "window": window.key,
        "action": decision.action,
        "condition": decision.condition,
        "reasons": list(decision.reasons),
        "drifted_features": list(decision.drifted_features),
        "drift_share": decision.drift_share,
        "realised": realised,
        "escalation": alert,
        "monitoring_run_id": run,
        "run_url": settings.run_url(experiment_id, run),
        "report_url": report_url,
        "trigger_conf": {
            "reason": reason[:500],
            "report_url": report_url,
            "drifted_features": list(decision.drifted_features),
        },
    }


def observe(
    at: datetime,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    inputs: list[str],
    validation: float | None,
    threshold: float,
    rules: MonitorRules,
    report: bool = True,
) -> tuple[drift.Observation, DriftResult | None, dict[str, float] | None]:
    """What one check sees: the drift of the champion's inputs and prediction in `current` against
    its `reference` (none when either is too small to judge), and the realised quality of the
    `labelled` rows (none with too few labels or one class). Also returns the drift result (with
    Evidently's report when `report`) and the realised metrics."""
    from include.mlops.monitoring import data_drift

    enough = len(current) >= rules.policy.min_current_rows and len(reference) >= rules.policy.min_reference_rows
    result = None
    if enough:
        categorical = [c for c in inputs if c in model.CATEGORICAL]
        numeric = [c for c in inputs if c not in model.CATEGORICAL] + [inference.PREDICTION]
        result = data_drift(current, reference, numeric, categorical, rules.report, report=report)
    features = [c for c in result.columns if c.column != inference.PREDICTION] if result else []
    realised = None
    if len(labelled) >= rules.policy.min_labelled_rows and labelled[model.LABEL].nunique() == 2:
        y, p = labelled[model.LABEL].to_numpy(), labelled[inference.PREDICTION].to_numpy()
        realised = binary_metrics(y, p, threshold)
    observation = drift.Observation(
        at=at,
        current_rows=len(current),
        reference_rows=len(reference),
        drifted={c.column: c.drifted for c in features},
        labelled_rows=len(labelled),
        realised=realised[rules.policy.quality_metric] if realised else None,
        champion_validation=validation,
        scores={c.column: c.score for c in features},
        prediction_drifted=bool(result and result.column(inference.PREDICTION).drifted),
    )
    return observation, result, realised


def _as_champion(current: pd.DataFrame, version: int, loaded: object, inputs: list[str]) -> pd.DataFrame:
    """The window as the champion sees it. Days scored by an earlier champion (the window spans a
    promotion) are scored again by this one from the features the log kept, so that the prediction's
    drift and the realised quality are the champion's own; if the log lacks one of its inputs, those
    rows are left out."""
    if current.empty or (current["model_version"] == version).all():
        return current
    stale = current["model_version"] != version
    if not set(inputs) <= set(current.columns):
        log.warning("Left out %d rows scored by earlier versions: the log lacks some champion inputs", stale.sum())
        return current[~stale].reset_index(drop=True)
    current = current.copy()
    x = model.model_input(current[stale], inputs)
    current.loc[stale, inference.PREDICTION] = loaded.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
    log.info("Version %s scored again %d rows of the window scored by earlier versions", version, stale.sum())
    return current


def record_retrain(settings: Settings, monitoring_run_id: str, training_run_id: str) -> None:
    """Note on a check's run that it triggered the training run `training_run_id` (Airflow's run id)."""
    from mlflow import MlflowClient

    tracking.connect(settings, EXPERIMENT)
    MlflowClient().set_tag(monitoring_run_id, "drift.retrain_run_id", training_run_id)


def _history(client: MlflowClient, experiment_id: str, name: str, at: datetime, run_id: str | None) -> list[Run]:
    """The checks of `name` before this one, oldest first: those up to `at`, other than the
    earlier tries of this Airflow run (a retry or a cleared task judges afresh)."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`drift.model` = '{name}'", max_results=5000, order_by=["start_time ASC"]
    )
    earlier = [
        run
        for run in runs
        if datetime.fromisoformat(run.data.tags["drift.at"]) <= at
        and (run_id is None or run.data.tags.get("airflow.run_id") != run_id)
    ]
    return sorted(earlier, key=lambda run: datetime.fromisoformat(run.data.tags["drift.at"]))  # stable: start order


def _past(run: Run) -> drift.PastCheck:
    tags = run.data.tags
    return drift.PastCheck(
        at=datetime.fromisoformat(tags["drift.at"]),
        action=tags.get("drift.action", "skip"),  # type: ignore[arg-type]
        condition=tags.get("drift.condition") == TRUE,
        asked_retrain=bool(tags.get("drift.retrain_run_id")),
    )


@dataclass(frozen=True)
class _Retrain(drift.Retrain):
    run_id: str = ""


def _last_retrain(settings: Settings, client: MlflowClient, checks: list[Run]) -> _Retrain | None:
    """The last retrain the monitor triggered and what the gate made of its candidate."""
    triggers = [c for c in checks if c.data.tags.get("drift.retrain_run_id")]
    if not triggers:
        return None
    training_run = triggers[-1].data.tags["drift.retrain_run_id"]
    triggered_at = datetime.fromisoformat(triggers[-1].data.tags["drift.at"])
    for candidate in client.search_model_versions(f"name = '{settings.model_name}'"):
        if candidate.tags.get("gate.airflow.run_id") == training_run and "gate.decision" in candidate.tags:
            outcome, version = candidate.tags["gate.decision"], int(candidate.version)
            break
    else:
        return _Retrain(triggered_at, run_id=training_run)
    decided = datetime.fromisoformat(candidate.tags["gate.evaluated_at"])
    if outcome == "reject":
        return _Retrain(triggered_at, "reject", version, decided, run_id=training_run)
    promoted = any(
        move.to_version == version and move.action == "promote" and move.status == "FINISHED"
        for move in registry.audit_trail(settings, settings.model_name)
    )
    if not promoted:
        return _Retrain(triggered_at, run_id=training_run)  # passed the gate, not promoted (yet)
    judged = drift.judged_since([_past(c) for c in checks], decided) + 1  # and this check
    return _Retrain(triggered_at, outcome, version, decided, judged, run_id=training_run)  # type: ignore[arg-type]
