"""`drift_escalation` with `dag.test()`: a person is asked through Airflow's human-in-the-loop task,
called by e-mail and on Slack (each received by a local server), and each answer is carried out and
recorded: roll back, retrain, mute, and no answer at all. Real MLflow registry and tracking; the
answers go through the REST API's own route function (tests/support/hitl.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient

from include.mlops import records, registry, tracking
from include.mlops.settings import Settings
from tests.support import hitl
from tests.support.alerts import connections, smtp_server, webhook_server

MODEL = "flight_delay"
MESSAGE = "data-quality incident since 2026-11-20T00:00:00+00:00: weather__temp out of range (38% of rows)"
FORM = {"window_start": None, "window_end": None, "family": "hist_gradient_boosting", "mute_days": 7}


@pytest.fixture
def state(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A registry with two versions (the champion 2, the previous champion 1) and a drift check's run."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    settings = Settings.from_env()
    tracking.connect(settings)
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(2):
        with tracking_run(settings) as run_id:
            client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id)
    registry.move_champion(settings, MODEL, 1, None, "promote", "first model")
    registry.move_champion(settings, MODEL, 2, 1, "promote", "better on its week")
    return settings


def tracking_run(settings: Settings):
    import mlflow

    tracking.connect(settings)
    run = mlflow.start_run()

    class Run:
        def __enter__(self) -> str:
            return run.info.run_id

        def __exit__(self, *exc: object) -> None:
            mlflow.end_run()

    return Run()


def escalation(settings: Settings) -> dict:
    """The conf drift_monitoring gives a run of drift_escalation, with a check run of its own."""
    experiment = tracking.connect(settings, records.DRIFT_EXPERIMENT)
    check = MlflowClient().create_run(experiment, tags={"drift.model": MODEL})
    return {
        "model": MODEL,
        "kind": "data_quality",
        "message": MESSAGE,
        "run_url": settings.run_url(experiment, check.info.run_id),
        "report_url": None,
        "monitoring_run_id": check.info.run_id,
    }


def run_escalation(conf: dict, responder):
    from airflow.dag_processing.dagbag import DagBag

    run = DagBag().get_dag("drift_escalation").test(run_conf=conf)
    hitl.finished(responder)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def answered(settings: Settings, conf: dict) -> dict[str, str]:
    tags = MlflowClient().get_run(conf["monitoring_run_id"]).data.tags
    return {key.removeprefix("drift."): value for key, value in tags.items() if key.startswith("drift.")}


def test_the_person_is_called_and_rolls_back(state: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = escalation(state)
    with smtp_server() as (smtp_port, inbox), webhook_server() as (webhook_port, posted):
        for name, value in connections(smtp_port, webhook_port).items():
            monkeypatch.setenv(name, value)
        run, states = run_escalation(conf, hitl.answer("drift_escalation", "ask", ["Roll back"], FORM, user="alice"))
    assert run.state == "success", states
    assert states == {"ask": "success", "act": "success", "roll_back": "success", "retrain_conf": "skipped",
                      "retrain": "skipped"}  # fmt: skip

    # Called: the alert log, the e-mail and the Slack message each say what happened and where to answer.
    [alert] = [json.loads(line) for line in state.alert_log_path.read_text().splitlines()]
    assert alert["subject"] == "[mlops] flight_delay: data quality, what now?"
    assert "flight_delay (data quality): " + MESSAGE in alert["message"] and "Answer in Airflow" in alert["message"]
    [mail] = inbox.messages
    assert mail["To"] == "oncall@example.org, ml-team@example.org" and mail["Subject"] == alert["subject"]
    assert "weather__temp out of range" in mail.get_body().get_content()
    [post] = posted
    assert post["path"] == "/services/T0/B0/secret" and "weather__temp out of range" in post["body"]["text"]

    # Carried out: the champion is back to version 1, audited with who answered.
    client = MlflowClient()
    assert int(client.get_model_version_by_alias(MODEL, "champion").version) == 1
    move = registry.audit_trail(state, MODEL)[-1]
    assert (move.action, move.from_version, move.to_version) == ("rollback", 2, 1)
    assert move.reason == "escalation (data_quality): rolled back by alice"
    assert move.context["airflow.escalation_answered_by"] == "alice"
    assert move.context["airflow.dag_id"] == "drift_escalation"
    # Recorded on the check's run: who chose what, when.
    recorded = answered(state, conf)
    assert (recorded["answer"], recorded["answered_by"]) == ("Roll back", "alice") and "muted_until" not in recorded


def test_the_person_asks_for_a_retrain_with_another_window_and_family(state: Settings) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    conf = escalation(state)
    form = FORM | {"window_start": "2026-10-01", "window_end": "2026-11-15", "family": "logistic_regression"}
    run, states = run_escalation(conf, hitl.answer("drift_escalation", "ask", ["Retrain"], form, user="bob"))
    assert states["retrain"] == "success" and states["roll_back"] == "skipped"
    with create_session() as session:
        training = session.query(DagRun).filter_by(dag_id="training_pipeline", run_id=f"escalation__{run.run_id}").one()
        asked = training.conf
        training.state = "failed"  # not run here: a queued training run would hold other modules' drift checks
    assert {key: asked[key] for key in ("window_start", "window_end", "family")} == {
        "window_start": "2026-10-01",
        "window_end": "2026-11-15",
        "family": "logistic_regression",
    }
    assert asked["reason"].startswith("escalation (data_quality): retrain asked by bob; data-quality incident")
    assert int(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == 2  # nothing else moved
    assert answered(state, conf)["answered_by"] == "bob"


def test_a_mute_is_recorded_for_the_next_checks(state: Settings) -> None:
    conf = escalation(state)
    _, states = run_escalation(conf, hitl.answer("drift_escalation", "ask", ["Mute"], FORM | {"mute_days": 3}))
    assert states["act"] == "success" and states["roll_back"] == states["retrain"] == "skipped"
    recorded = answered(state, conf)
    at = datetime.fromisoformat(recorded["answered_at"])
    assert datetime.fromisoformat(recorded["muted_until"]) == at + timedelta(days=3)
    # The next checks read it back (the policy's side: tests/include/mlops/test_drift_policy.py).
    experiment = tracking.connect(state, records.DRIFT_EXPERIMENT)
    MlflowClient().set_tag(conf["monitoring_run_id"], "drift.at", "2026-11-23T00:00:00+00:00")
    MlflowClient().set_tag(conf["monitoring_run_id"], "drift.escalated", "data_quality 2026-11-20T00:00:00+00:00")
    [past] = [records.DriftCheck.read(r).past() for r in MlflowClient().search_runs([experiment])]
    assert past.muted_until == at + timedelta(days=3)


def test_no_answer_takes_the_default_changes_nothing_and_says_so(state: Settings) -> None:
    conf = escalation(state)
    run, states = run_escalation(conf, hitl.time_out("drift_escalation", "ask"))
    assert run.state == "success" and states["act"] == "success"
    assert states["roll_back"] == states["retrain_conf"] == "skipped"
    recorded = answered(state, conf)
    assert recorded["answer"] == "Acknowledge" and recorded["answered_by"].startswith("nobody: no answer")
    assert int(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == 2
    alerts = [json.loads(line) for line in state.alert_log_path.read_text().splitlines()]
    assert [a["task_id"] for a in alerts] == ["ask", "act"]  # asked, then told that nobody answered
    assert alerts[1]["subject"] == "[mlops] flight_delay: no answer to the escalation"
    assert "Acknowledge, nothing changed" in alerts[1]["message"]
