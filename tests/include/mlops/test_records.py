"""The records of what the loop writes to MLflow: each written and read back through a real MLflow
store, and the names people and other tools search by (a renamed tag would break their searches
and Feast's resolution of a version's feature service)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from include.mlops import records, tracking
from include.mlops.records import Answer, AuditEntry, CandidateRun, DriftCheck, GateJudgement, Registration
from include.mlops.settings import Settings

AT = datetime(2026, 11, 23, tzinfo=UTC)
AIRFLOW = records.airflow_ids("training_pipeline", "manual__1", 1, "alice")


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    settings = Settings(state_dir=tmp_path / "state", model_name="records")
    tracking.connect(settings)
    return settings


def registered(settings: Settings) -> tuple[str, int]:
    """A run and a version of the settings' model made from it (no model file: the registry only
    needs a source)."""
    client = MlflowClient()
    run = client.create_run(tracking.connect(settings)).info.run_id
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(settings.model_name, f"runs:/{run}/model", run_id=run)
    return run, int(version.version)


def test_a_candidate_run_is_written_and_read_back(store: Settings) -> None:
    written = CandidateRun(
        config={"family": "logistic_regression", "c": 1.0, "seed": 0},
        threshold=0.3,
        train_rows=1000,
        validation_rows=300,
        validation_cutoff=datetime(2026, 11, 13, tzinfo=UTC),
        evaluation_start=datetime(2026, 11, 16, tzinfo=UTC),
        train_positive_rate=0.21,
    )
    sample = pd.DataFrame({"carrier": ["UA", None], "distance": [200.0, 1000.0]})
    figure = plt.figure()
    with mlflow.start_run(experiment_id=tracking.connect(store)) as run:
        written.write()
        details = ({"overall": {"roc_auc": 0.7}}, {"distance": 0.02}, sample, ["carrier"])
        CandidateRun.log_details(*details, {"roc_curve": figure})
    assert not plt.fignum_exists(figure.number)  # closed once logged
    assert [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")] == ["plots/roc_curve.png"]
    found = MlflowClient().get_run(run.info.run_id)
    read = CandidateRun.read(found)
    assert read.threshold == 0.3 and read.evaluation_start == written.evaluation_start
    assert read.train_positive_rate == 0.21 and read.family == "logistic_regression"
    assert CandidateRun.importance(run.info.run_id) == {"distance": 0.02}
    reference = CandidateRun.reference(found, ["carrier"])
    assert reference["carrier"].tolist() == ["UA", None] and reference["distance"].tolist() == [200.0, 1000.0]


def test_a_run_that_is_not_a_candidates_is_named(store: Settings) -> None:
    client = MlflowClient()
    run = client.create_run(tracking.connect(store)).info.run_id
    client.log_param(run, "threshold", "0.3")
    with pytest.raises(records.RecordError, match=f"run {run} is not a candidate's training run: it lacks train_rows"):
        CandidateRun.read(client.get_run(run))
    assert CandidateRun.importance(run) is None


def test_a_gate_judgement_is_kept_on_the_run_and_described_on_the_version(store: Settings) -> None:
    run, version = registered(store)
    judgement = GateJudgement(
        model=store.model_name,
        candidate_version=version,
        champion_version=None,
        outcome="reject",
        reasons=("roc_auc 0.5000 is outside >= 0.55", "log_loss 0.7 is outside <= 0.693"),
        decided_at=AT,
        judged_at=datetime(2026, 12, 5, 7, tzinfo=UTC),
        judgement=1,
        evaluation_window="20261116T0000Z_20261123T0000Z",
        evaluation_rows=6000,
        metrics={"candidate": {"roc_auc": 0.5}},
        context=AIRFLOW,
        candidate_run_id=run,
        report="# report\n",
    )
    judgement.write(MlflowClient(), {"rules": {}})
    found = MlflowClient().get_model_version(store.model_name, str(version))
    latest = GateJudgement.latest(found)
    assert latest is not None and not latest.passed
    assert (latest.outcome, latest.reasons, latest.champion_version) == ("reject", judgement.reasons, None)
    assert (latest.decided_at, latest.judgement, latest.metrics) == (AT, 1, judgement.metrics)
    assert latest.airflow_run_id == "manual__1" and latest.evaluation_days.endswith("(7 days, end excluded)")
    assert GateJudgement.judgements(found) == 1
    assert mlflow.artifacts.load_text(f"runs:/{run}/gate/001/report.md") == "# report\n"
    decision = mlflow.artifacts.load_dict(f"runs:/{run}/gate/001/decision.json")
    assert decision["outcome"] == "reject" and decision["rules"] == {} and "report" not in decision
    assert GateJudgement.from_dict(judgement.to_dict()) == judgement  # what XCom carries


def test_a_drift_check_its_retrain_and_the_answer_to_its_escalation_are_read_back(store: Settings) -> None:
    client = MlflowClient()
    experiment = tracking.connect(store, records.DRIFT_EXPERIMENT)
    check = DriftCheck(
        model=store.model_name,
        at=AT,
        action="retrain",
        condition=True,
        champion_version=3,
        window="20261116T0000Z_20261123T0000Z",
        reference="training",
        drifted=("weather__temp", "distance"),
        incidents=("weather__wind_speed stuck_value",),
        reasons=("drift: 2 features", "quality not judged: 10 labelled rows (at least 1000)"),
        escalation="the retrain did not help",
        escalation_kind="retrain_did_not_help",
        escalated="retrain_did_not_help 2026-11-16",
        context=AIRFLOW,
        metrics={"drift_share": 0.4, f"{DriftCheck.SCORE}distance": 0.2},
    )
    run = check.write(client, experiment, {"decision": "retrain"}, {DriftCheck.DRIFT_REPORT: "<html></html>"})
    DriftCheck.record_retrain(client, run, "drift__manual__1")
    muted = datetime(2026, 11, 30, tzinfo=UTC)
    Answer("Mute", "alice", "2026-11-23T09:00:00+00:00", muted).write_on_check(client, run)
    [found] = [DriftCheck.read(r) for r in records.search(client, experiment, DriftCheck.of_model(store.model_name))]
    assert found.drifted == check.drifted and found.incidents == check.incidents and found.condition
    assert found.drift_share == 0.4 and found.computed and found.retrain_run_id == "drift__manual__1"
    assert found.answer == Answer("Mute", "alice", "2026-11-23T09:00:00+00:00", muted)
    past = found.past()
    assert (past.action, past.asked_retrain, past.muted_until, past.escalated) == (
        "retrain",
        True,
        muted,
        check.escalated,
    )
    assert mlflow.artifacts.load_text(f"runs:/{run}/{DriftCheck.DRIFT_REPORT}") == "<html></html>"
    assert found.reasons == check.reasons

    linked = found.linked(store.run_url)  # what the check task hands on, and the view shows
    assert linked.run_url == store.run_url(experiment, run)
    assert linked.report_url == store.run_url(experiment, run, DriftCheck.DRIFT_REPORT)
    assert DriftCheck.from_dict(linked.to_dict()) == linked  # what XCom carries
    assert linked.retrain_conf() == {
        "reason": "drift_monitoring 2026-11-23: drift: 2 features",
        "report_url": linked.report_url,
        "drifted_features": ["weather__temp", "distance"],
        "not_judged": [],
    }
    asked = linked.escalation_conf()
    assert asked is not None and (asked["kind"], asked["monitoring_run_id"]) == ("retrain_did_not_help", run)
    assert replace(linked, escalation="").escalation_conf() is None


def test_an_audit_entry_and_the_version_it_made_champion(store: Settings) -> None:
    client = MlflowClient()
    _, version = registered(store)
    experiment = tracking.connect(store, records.AUDIT_EXPERIMENT)
    entry = AuditEntry(store.model_name, "promote", None, version, "first", AT.isoformat(), "FINISHED", AIRFLOW)
    run = entry.open(client, experiment)
    client.set_terminated(run, "FINISHED")
    Registration(store.model_name, version, "records_v1", champion_since=AT).write(client)
    [found] = records.search(client, experiment, AuditEntry.of_model(store.model_name))
    assert AuditEntry.read(found) == entry
    assert entry.to_dict()["airflow.triggered_by"] == "alice" and entry.triggered_by == "alice"
    registration = Registration.read(client.get_model_version(store.model_name, str(version)))
    assert (registration.feature_service, registration.champion_since) == ("records_v1", AT)


def test_the_names_other_tools_and_people_search_by() -> None:
    """Feast's MLflow integration resolves a version's feature service from this tag; people filter
    MLflow's UI by these; changing one breaks them, so it must be a decision, not an accident."""
    from feast.mlflow_integration import model_resolver

    assert Registration.FEATURE_SERVICE in Path(model_resolver.__file__).read_text()
    assert (records.DRIFT_EXPERIMENT, records.AUDIT_EXPERIMENT) == ("drift_monitoring", "registry_audit")
    assert records.training_experiment("flight_delay") == "flight_delay_training"
    assert DriftCheck.of_model("m") == "tags.`drift.model` = 'm'" and GateJudgement.PREFIX == "gate."


def test_search_reads_every_page_oldest_first(store: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient()
    experiment = tracking.connect(store, "paged")
    made = []
    for _ in range(5):
        made.append(client.create_run(experiment, tags={"kind": "x"}).info.run_id)
        time.sleep(0.01)  # distinct start times: the order is theirs
    monkeypatch.setattr(records, "SEARCH_PAGE", 2)  # three pages
    assert [run.info.run_id for run in records.search(client, experiment, records.tagged("kind", "x"))] == made
