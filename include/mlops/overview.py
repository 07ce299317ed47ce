"""What the MLOps view shows, read from MLflow: the registered model's versions, the promotion gate's
decisions, the drift checks day by day, and the audit trail of the champion's moves.

Everything here is read-only and comes from where the DAGs record it: versions, aliases and the
gate's tags in the model registry, drift checks in the experiment `drift_monitoring`, alias moves
in the experiment `registry_audit`. Nothing is cached: the view shows the registry as it is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from include.mlops import registry, tracking
from include.mlops.lake import Interval

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

    from include.mlops.settings import Settings

DRIFT_EXPERIMENT = "drift_monitoring"
METRICS = ("roc_auc", "log_loss", "brier", "pr_auc")  # validation metrics of a version's run, as shown
VERSIONS_SHOWN = 100  # the newest versions (and their gate decisions); a year of weekly and drift retrains


@dataclass(frozen=True)
class Version:
    version: int
    created_at: str
    aliases: list[str]
    run_id: str
    experiment_id: str  # of its training run ("" when the run is gone)
    family: str  # the model family its training run logged (its `family` parameter)
    metrics: dict[str, float]  # on the validation split of its training run
    feature_service: str
    trigger_reason: str  # why the training run that produced it ran
    gate: str  # the gate's decision: promote, first-model, reject, or "" when not judged
    url: str
    run_url: str


@dataclass(frozen=True)
class GateDecision:
    version: int
    outcome: str
    reasons: str
    against: int | None  # the champion it was judged against
    evaluated_at: str  # the data's time: labels landed by then were judged
    judged_at: str  # when the judgement was made
    evaluation_window: str  # for people (`Interval.label`)
    figures: dict[str, dict[str, float]]  # what it judged on that window: "candidate" and "champion" metrics
    airflow_dag_id: str
    airflow_run_id: str
    version_url: str
    report_url: str


@dataclass(frozen=True)
class DriftCheck:
    at: str
    action: str  # incident, retrain, no_drift, hold, skip
    champion_version: int
    drift_share: float | None  # the share of the model's importance that drifted
    realised_roc_auc: float | None
    baseline_roc_auc: float | None  # the champion's on its first production week
    drifted: str
    incidents: str  # data-quality findings: "column check, ..."
    not_judged: str  # columns drift could not judge
    reasons: str
    escalation: str
    escalation_kind: str  # data_quality or retrain_did_not_help
    retrain_run_id: str  # the training run it triggered, if any
    held_by: tuple[str, ...]  # the training runs that held its retrain back, if any
    airflow_run_id: str
    run_url: str
    report_url: str


@dataclass(frozen=True)
class Overview:
    model: str
    champion: Version | None
    previous: Version | None
    champion_move: registry.AliasMove | None  # the move that made the champion what it is
    versions: list[Version] = field(default_factory=list)  # newest first
    gate: list[GateDecision] = field(default_factory=list)  # newest first
    drift: list[DriftCheck] = field(default_factory=list)  # oldest first
    audit: list[registry.AliasMove] = field(default_factory=list)  # newest first

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def overview(settings: Settings, model: str) -> Overview:
    """Everything the view shows about `model`; an unknown model has no versions."""
    from mlflow import MlflowClient

    tracking.connect(settings)
    found, aliases = _registry(MlflowClient(), model)
    versions = model_versions(settings, model, found, aliases)
    champion = next((v for v in versions if registry.CHAMPION in v.aliases), None)
    audit = list(reversed(registry.audit_trail(settings, model)))
    move = next((m for m in audit if champion and m.status == "FINISHED" and m.to_version == champion.version), None)
    return Overview(
        model=model,
        champion=champion,
        previous=next((v for v in versions if registry.PREVIOUS in v.aliases), None),
        champion_move=move,
        versions=versions,
        gate=gate_decisions(settings, model, found, versions),
        drift=drift_checks(settings, model),
        audit=audit,
    )


def model_versions(
    settings: Settings, model: str, found: list[ModelVersion], aliases: dict[str, list[str]]
) -> list[Version]:
    """The versions, newest first, with their runs' validation metrics and their aliases."""
    from mlflow import MlflowClient

    client = MlflowClient()
    versions = []
    for v in found:
        run = _run(client, v.run_id)
        metrics = run.data.metrics if run else {}
        versions.append(
            Version(
                version=int(v.version),
                created_at=_iso(v.creation_timestamp),
                aliases=sorted(aliases.get(str(v.version), [])),
                run_id=v.run_id or "",
                experiment_id=run.info.experiment_id if run else "",
                family=run.data.params.get("family", "") if run else "",
                metrics={name: metrics[name] for name in METRICS if name in metrics},
                feature_service=v.tags.get("feast.feature_service", ""),
                trigger_reason=run.data.tags.get("trigger_reason", "") if run else "",
                gate=v.tags.get("gate.decision", ""),
                url=settings.model_version_url(model, v.version),
                run_url=settings.run_url(run.info.experiment_id, v.run_id) if run else "",
            )
        )
    return sorted(versions, key=lambda v: v.version, reverse=True)


def gate_decisions(
    settings: Settings, model: str, found: list[ModelVersion], versions: list[Version]
) -> list[GateDecision]:
    """The gate's latest judgement of each judged version, newest first (every judgement is kept on the
    version's run, under gate/<n>/)."""
    runs = {v.version: v for v in versions if v.run_url}
    decisions = []
    for v in found:
        tags, number = v.tags, int(v.version)
        if "gate.decision" not in tags:
            continue
        window = tags.get("gate.evaluation_window")
        against = tags.get("gate.champion_version", "none")
        decisions.append(
            GateDecision(
                version=number,
                outcome=tags["gate.decision"],
                reasons=tags.get("gate.reasons", ""),
                against=None if against == "none" else int(against),
                evaluated_at=tags.get("gate.evaluated_at", ""),
                judged_at=tags.get("gate.judged_at", ""),
                evaluation_window=Interval.from_key(window).label if window else "",
                figures=json.loads(tags.get("gate.metrics", "{}")),
                airflow_dag_id=tags.get("gate.airflow.dag_id", ""),
                airflow_run_id=tags.get("gate.airflow.run_id", ""),
                version_url=settings.model_version_url(model, number),
                report_url=settings.run_url(runs[number].experiment_id, runs[number].run_id, tags["gate.report"])
                if number in runs and tags.get("gate.report")
                else "",
            )
        )
    return sorted(decisions, key=lambda d: (d.evaluated_at, d.version), reverse=True)


def drift_checks(settings: Settings, model: str) -> list[DriftCheck]:
    """Every drift check of `model`, oldest first (by the time it checked, then when it ran)."""
    from mlflow import MlflowClient

    experiment = tracking.connect(settings, DRIFT_EXPERIMENT)
    runs = MlflowClient().search_runs(
        [experiment],
        filter_string=f"tags.`drift.model` = '{model}'",
        order_by=["attributes.start_time ASC"],
        max_results=5000,
    )
    checks = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        url = settings.run_url(experiment, run.info.run_id)
        computed = any(name.startswith("drift_score.") for name in metrics)  # not when the check skipped
        checks.append(
            DriftCheck(
                at=tags["drift.at"],
                action=tags.get("drift.action", ""),
                champion_version=int(tags.get("drift.champion_version", 0)),
                drift_share=metrics.get("drift_share") if computed else None,
                realised_roc_auc=metrics.get("realised_roc_auc"),
                baseline_roc_auc=metrics.get("baseline_roc_auc"),
                drifted=tags.get("drift.drifted", ""),
                incidents=tags.get("drift.incidents", ""),
                not_judged=tags.get("drift.not_judged", ""),
                reasons=tags.get("drift.reasons", ""),
                escalation=tags.get("drift.escalation", ""),
                escalation_kind=tags.get("drift.escalation_kind", ""),
                retrain_run_id=tags.get("drift.retrain_run_id", ""),
                held_by=tuple(filter(None, tags.get("drift.held_by", "").split(", "))),
                airflow_run_id=tags.get("airflow.run_id", ""),
                run_url=url,
                report_url=settings.run_url(experiment, run.info.run_id, "drift/report.html") if computed else "",
            )
        )
    return sorted(checks, key=lambda c: datetime.fromisoformat(c.at))  # stable: runs of one time keep their order


def _registry(client: MlflowClient, model: str) -> tuple[list[ModelVersion], dict[str, list[str]]]:
    """The newest versions of `model` and any older one an alias points to, with their tags, and the
    aliases of each version (by its number); nothing when the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return [], {}
        raise
    aliases: dict[str, list[str]] = {}
    for alias, version in registered.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    found = list(
        client.search_model_versions(f"name = '{model}'", max_results=VERSIONS_SHOWN, order_by=["version_number DESC"])
    )
    shown = {str(v.version) for v in found}
    found += [client.get_model_version(model, number) for number in aliases if number not in shown]  # older aliased
    return found, aliases


def _run(client: MlflowClient, run_id: str | None) -> Run | None:
    """The run, or None when it was deleted: its version still shows, without metrics."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _iso(millis: int | None) -> str:
    return datetime.fromtimestamp((millis or 0) / 1000, UTC).isoformat(timespec="seconds")
