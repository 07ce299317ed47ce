"""What the MLOps view shows, read from MLflow: the registered model's versions, the promotion gate's
decisions, the drift checks day by day, and the audit trail of the champion's moves.

Everything here is read-only and comes from where the DAGs record it, read as the records of
`include.mlops.records` (the gate's judgements, the drift checks, the audit entries). Nothing is
cached: the view shows the registry as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from include.mlops import records, registry, tracking
from include.mlops.records import AuditEntry, DriftCheck, GateJudgement

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

    from include.mlops.settings import Settings

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
class Overview:
    model: str
    champion: Version | None
    previous: Version | None
    champion_move: AuditEntry | None  # the move that made the champion what it is
    versions: list[Version] = field(default_factory=list)  # newest first
    gate: list[GateJudgement] = field(default_factory=list)  # newest first: each version's latest
    drift: list[DriftCheck] = field(default_factory=list)  # oldest first
    audit: list[AuditEntry] = field(default_factory=list)  # newest first

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "gate": [judgement.to_dict() for judgement in self.gate],
            "drift": [check.to_dict() for check in self.drift],
        }


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
        gate=gate_judgements(settings, found, versions),
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
                family=records.CandidateRun.family_of(run) if run else "",
                metrics={name: metrics[name] for name in METRICS if name in metrics},
                feature_service=records.Registration.read(v).feature_service,
                trigger_reason=records.TrainingRun.reason_of(run) if run else "",
                gate=judgement.outcome if (judgement := GateJudgement.latest(v)) else "",
                url=settings.model_version_url(model, v.version),
                run_url=settings.run_url(run.info.experiment_id, v.run_id) if run else "",
            )
        )
    return sorted(versions, key=lambda v: v.version, reverse=True)


def gate_judgements(settings: Settings, found: list[ModelVersion], versions: list[Version]) -> list[GateJudgement]:
    """The gate's latest judgement of each judged version, newest first, with the address of its
    report (every judgement is kept on the version's run, under gate/<n>/)."""
    runs = {v.version: v for v in versions if v.run_url}
    judgements = []
    for v in found:
        judgement = GateJudgement.latest(v)
        if judgement is None:
            continue
        number = judgement.candidate_version
        run = runs.get(number)
        judgements.append(
            replace(
                judgement,
                model_version_url=settings.model_version_url(judgement.model, number),
                report_url=settings.run_url(run.experiment_id, run.run_id, judgement.report_path) if run else "",
            )
        )
    return sorted(judgements, key=lambda j: (j.decided_at, j.candidate_version), reverse=True)


def drift_checks(settings: Settings, model: str) -> list[DriftCheck]:
    """Every drift check of `model`, oldest first (by the time it checked, then when it ran)."""
    from mlflow import MlflowClient

    experiment = tracking.connect(settings, records.DRIFT_EXPERIMENT)
    runs = records.search(MlflowClient(), experiment, DriftCheck.of_model(model))
    checks = (DriftCheck.read(run).linked(settings.run_url) for run in runs)
    return sorted(checks, key=lambda c: c.at)  # stable: runs of one time keep their order


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
