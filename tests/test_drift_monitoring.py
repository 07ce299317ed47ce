"""Batch inference and drift monitoring on real days: `dag.test()` of both DAGs, real Evidently,
real MLflow, real Feast. The champion is a real model trained on three real weeks.

The days: the champion is trained on 26 October - 16 November 2026 (replaying 11 November -
1 December 2013). The week of 2-8 November lies inside its training window, so production looks
like its training data (no drift); the same week with a shift injected into its features must
trigger a retrain, and a three-day window later, when the weather of three days never looks like
that of the training weeks, the condition persists.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from include import cli
from include.flights import inference, model, monitoring, pipeline, training
from include.mlops import drift, registry, tracking
from include.mlops.lake import Interval
from include.mlops.monitoring import data_drift
from include.mlops.settings import Settings
from tests.conftest import SHIFTED_CARRIER, copy_weeks, finish_training_runs, inject_shift

TRAINING = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
WEEK = Interval(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC))


def day(d: int) -> datetime:
    return datetime(2026, 11, d, tzinfo=UTC)


@pytest.fixture(scope="module")
def state(airflow_db: Path, weeks: Path, tmp_path_factory: pytest.TempPathFactory):
    """A private state folder with the real weeks' features and one trained version, not champion.

    The DAGs' tasks read the environment's settings, so the environment points at it meanwhile.
    """
    settings = copy_weeks(weeks, tmp_path_factory.mktemp("drift") / "state")
    previous = os.environ["MLOPS_STATE_DIR"]
    os.environ["MLOPS_STATE_DIR"] = str(settings.state_dir)
    training.train(settings, TRAINING, model.ModelConfig(), reason="drift tests")
    yield settings
    os.environ["MLOPS_STATE_DIR"] = previous
    finish_training_runs("failed")  # the training runs the checks triggered, queued, must not hold back other modules'


@pytest.fixture(scope="module")
def dags(state: Settings):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    return bag.get_dag("batch_inference"), bag.get_dag("drift_monitoring")


def run_inference(dag, on: datetime):
    """The daily run that scores the day `on` (a manual run scores the whole day before it)."""
    return dag.test(logical_date=on + timedelta(days=1), run_after=on + timedelta(days=1))


def run_monitoring(dag, at: datetime, conf: dict | None = None):
    """The daily check whose run falls on `at` + 01:00 (its window ends at midnight of `at`)."""
    return dag.test(logical_date=at - timedelta(hours=23), run_after=at + timedelta(hours=1), run_conf=conf or {})


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def training_runs(prefix: str = "drift__") -> list:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all()
        return [(r.run_id, r.conf, r.state) for r in runs if r.run_id.startswith(prefix)]


def due(run_id: str) -> tuple[datetime | None, datetime]:
    """A training run's logical date and the time it is due (`run_after`)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == "training_pipeline", DagRun.run_id == run_id).one()
        return run.logical_date, run.run_after


def checks(settings: Settings) -> list:
    experiment = tracking.connect(settings, monitoring.EXPERIMENT)
    return MlflowClient().search_runs([experiment], order_by=["start_time ASC"])


def test_batch_inference_skips_while_there_is_no_champion(dags) -> None:
    batch, _ = dags
    run = run_inference(batch, day(2))
    assert states(run)["score"] == "skipped"
    assert not inference.predictions(Settings.from_env(), Interval(day(2), day(3))).shape[0]


def test_batch_inference_then_drift_monitoring_over_real_days_without_drift(dags, state: Settings) -> None:
    batch, monitor = dags
    registry.move_champion(state, state.model_name, 1, None, "promote", "drift tests", {"actor": "test"})
    for d in range(2, 9):
        assert run_inference(batch, day(d)).state == "success"

    log = inference.predictions(state, WEEK)
    assert len(log) == log["flight_id"].nunique() > 6000
    assert (log["model_version"] == 1).all() and log["prediction"].between(0, 1).all()
    assert (log["event_timestamp"] == log["sched_dep_at"] - state.prediction_lead).all()
    assert {"weather__temp", "carrier_ops__mean_arr_delay_24h", "carrier"} <= set(log.columns)
    # Scored before they landed: flights without an outcome (cancelled) are in the log too.
    assert log["weather__temp"].notna().mean() > 0.95
    kept = sorted((state.lake_dir / "raw" / "flight_schedule").glob("*/*.jsonl.gz"))
    assert len(kept) == 7  # the schedule each day was scored from is kept raw
    rerun = run_inference(batch, day(8))
    assert rerun.state == "success"
    assert len(inference.predictions(state, WEEK)) == len(log)  # replaced, not duplicated

    run = run_monitoring(monitor, day(9))
    assert run.state == "success", states(run)
    assert states(run) == {
        "predictions_ready": "success",
        "check": "success",
        "retrain_needed": "success",
        "trigger_training": "skipped",
        "record_retrain": "skipped",
        "escalate": "skipped",
    }
    result = next(ti for ti in run.get_task_instances() if ti.task_id == "check").xcom_pull(task_ids="check")
    assert result["action"] == "no_drift" and result["window"] == "20261102T0000Z_20261109T0000Z"
    assert result["realised"]["roc_auc"] > 0.6  # labels of the week have landed
    assert result["report_url"] == result["run_url"] + "/artifacts/drift/report.html"
    check_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "check")
    assert check_ti.xcom_pull(task_ids="check", key="_link_DriftReportLink") == result["report_url"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(result["monitoring_run_id"], "drift")}
    assert artifacts == {"drift/report.html", "drift/report.json"}
    html = MlflowClient().download_artifacts(result["monitoring_run_id"], "drift/report.html")
    assert "weather__temp" in Path(html).read_text()
    assert {a.path for a in MlflowClient().list_artifacts(result["monitoring_run_id"], "quality")} == {
        "quality/report.html",
        "quality/report.json",
    }
    assert training_runs() == []


def test_an_injected_shift_triggers_training_with_the_reason_and_names_the_features(dags, state: Settings) -> None:
    """Temperature in °C instead of °F and a carrier's delays doubled, in the week's features."""
    _, monitor = dags
    inject_shift(state, WEEK)
    for d in range(2, 9):
        inference.score(state, Interval(day(d), day(d + 1)))

    run = run_monitoring(monitor, day(9))
    assert states(run)["trigger_training"] == "success" and states(run)["escalate"] == "skipped"
    result = next(ti for ti in run.get_task_instances() if ti.task_id == "check").xcom_pull(task_ids="check")
    assert result["action"] == "retrain"
    assert {"weather__temp", "carrier_ops__mean_arr_delay_24h"} <= set(result["drifted_features"])
    assert "severe drift" in result["trigger_conf"]["reason"] and "weather__temp" in result["trigger_conf"]["reason"]
    [(run_id, conf, _)] = training_runs()
    assert run_id == f"drift__{run.run_id}"
    assert due(run_id) == (None, run.run_after)  # the retrain of the check's day, whenever it ran
    assert conf["reason"].startswith("drift_monitoring 2026-11-09: ")
    assert conf["report_url"] == result["report_url"]
    assert "weather__temp" in conf["drifted_features"]
    assert checks(state)[-1].data.tags["drift.retrain_run_id"] == run_id


def test_no_new_trigger_while_training_is_queued_nor_during_the_cooldown(dags, state: Settings) -> None:
    _, monitor = dags
    inference.score(state, Interval(day(9), day(10)))

    queued = run_monitoring(monitor, day(10), {"window_days": 3})
    result = next(ti for ti in queued.get_task_instances() if ti.task_id == "check").xcom_pull(task_ids="check")
    assert result["action"] == "hold" and "a training run is already queued or running" in result["reasons"]
    assert states(queued)["trigger_training"] == "skipped"

    finish_training_runs("failed")
    cooling = run_monitoring(monitor, day(10), {"window_days": 3})
    result = next(ti for ti in cooling.get_task_instances() if ti.task_id == "check").xcom_pull(task_ids="check")
    assert result["action"] == "hold" and any(r.startswith("cooling down after") for r in result["reasons"])
    assert len(training_runs()) == 1
    assert states(cooling)["escalate"] == "skipped"  # the retrain has no gate decision yet


def test_escalation_when_the_drift_triggered_candidate_is_rejected(dags, state: Settings) -> None:
    """The retrain learned the same model again; the gate rejects it; the condition persists."""
    from include.flights import gating

    _, monitor = dags
    [(training_run, _, _)] = training_runs()
    tracking.connect(state)
    champion = MlflowClient().get_model_version(state.model_name, "1")
    version, _ = training.register_version(state, champion.source)
    context = {"airflow.dag_id": "training_pipeline", "airflow.run_id": training_run, "airflow.try_number": "1"}
    gated = gating.evaluate_candidate(state, version, day(23), context=context)
    assert gated["outcome"] == "reject"
    for d in (10, 11):
        inference.score(state, Interval(day(d), day(d + 1)))

    run = run_monitoring(monitor, day(12), {"window_days": 3})
    assert states(run)["escalate"] == "failed", states(run)
    alerts = [json.loads(line) for line in state.alert_log_path.read_text().splitlines()]
    assert len(alerts) == 1 and alerts[0]["dag_id"] == "drift_monitoring"
    message = alerts[0]["message"]
    assert "drift persists since 2026-11-09T00:00:00+00:00" in message
    assert f"produced version {version}, which the promotion gate rejected" in message
    assert checks(state)[-1].data.tags["drift.escalated_for"] == training_run

    inference.score(state, Interval(day(12), day(13)))
    again = run_monitoring(monitor, day(13), {"window_days": 3})  # the same retrain: no second alert
    assert states(again)["escalate"] == "skipped"
    assert len(state.alert_log_path.read_text().splitlines()) == 1


def test_a_window_without_predictions_is_skipped_with_a_message(state: Settings) -> None:
    result = monitoring.check(state, day(1), days=7)
    assert result["action"] == "skip" and result["report_url"] is None
    assert result["reasons"][0].startswith("too few rows to judge drift: 0 current (at least 1000)")
    small = monitoring.check(state, day(3), days=1)  # one day: 900-odd flights
    assert small["action"] == "skip" and "current (at least 1000)" in small["reasons"][0]


def test_two_random_halves_of_a_real_week_do_not_drift_and_a_shift_does(weeks: Path, tmp_path: Path) -> None:
    settings = copy_weeks(weeks, tmp_path / "state")
    week = pipeline.training_set(settings, Interval(day(16), day(23)))
    inputs = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
    week = model.model_input(week, inputs).sample(frac=1, random_state=7)
    first, second = week.iloc[: len(week) // 2], week.iloc[len(week) // 2 :]
    rules = monitoring.load_rules()
    numeric = [c for c in inputs if c not in model.CATEGORICAL]

    def decide(current: pd.DataFrame) -> drift.DriftDecision:
        result = data_drift(current, first, numeric, model.CATEGORICAL, rules.report)
        # The report's own ValueDrift scores and tests, and the same verdicts without a report.
        exported = result.snapshot.dict()
        scores = {m["config"]["column"]: m["value"] for m in exported["metrics"] if "ValueDrift" in m["config"]["type"]}
        failed = {
            t["metric_config"]["params"]["column"]
            for t in exported["tests"]
            if "ValueDrift" in t["metric_config"]["params"]["type"] and str(t["status"]).endswith("FAIL")
        }
        assert {c.column: (c.score, c.drifted) for c in result.columns} == {c: (scores[c], c in failed) for c in scores}
        lean = data_drift(current, first, numeric, model.CATEGORICAL, rules.report, report=False)
        assert lean.columns == result.columns and lean.snapshot is None
        observation = drift.Observation(
            day(23), len(current), len(first), {c.column: c.drifted for c in result.columns}, 0, None, None,
            {c.column: c.score for c in result.columns},
        )  # fmt: skip
        return drift.decide(rules.policy, observation, drift.History())

    calm = decide(second)
    # Sampling noise may tip one sparse column (wind gusts are reported for a fifth of the hours).
    assert calm.action == "no_drift" and calm.drift_share < 0.05

    shifted = shift_features(second)
    moved = decide(shifted)
    assert moved.action == "retrain"
    # Exactly the shifted features, and nothing else, newly drift: the temperature, and the delay
    # averages of one carrier (which of its windows cross the threshold depends on the week).
    new = set(moved.drifted_features) - set(calm.drifted_features)
    delays = {f"carrier_ops__mean_arr_delay_{window}" for window in ("1h", "24h", "7d")}
    assert "weather__temp" in new and new & delays and new <= {"weather__temp", *delays}
    assert moved.reasons[0].startswith("severe drift (score >= 1): weather__temp")


def test_drift_rules_errors_name_the_problem() -> None:
    with pytest.raises(drift.DriftRulesError, match="unknown drift rule sections: polcy"):
        monitoring.load_rules({"polcy": {}})
    with pytest.raises(drift.DriftRulesError, match="report: unknown drift report settings: treshold"):
        monitoring.load_rules({"report": {"treshold": 0.1}})
    with pytest.raises(drift.DriftRulesError, match="share_threshold must be in"):
        monitoring.load_rules({"policy": {"share_threshold": 2}})
    with pytest.raises(drift.DriftRulesError, match="does not exist"):
        monitoring.load_rules("missing.yaml")


def test_cli_score_and_drift(state: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["score", "--start", "2026-11-12", "--end", "2026-11-13"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model_version"] == 1 and scored["rows"] > 700
    assert cli.main(["drift", "--at", "2026-11-13", "--days", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "skip"
    assert cli.main(["drift", "--at", "2026-11-13", "--days", "0"]) == 2
    assert "the drift window must be at least one day" in capsys.readouterr().err


def shift_features(frame: pd.DataFrame) -> pd.DataFrame:
    """°F to °C, and the chosen carrier's recent delays doubled."""
    shifted = frame.copy()
    shifted["weather__temp"] = (shifted["weather__temp"] - 32) * 5 / 9
    rows = shifted["carrier"] == SHIFTED_CARRIER
    for column in [c for c in shifted.columns if c.startswith("carrier_ops__mean_arr_delay")]:
        shifted.loc[rows, column] = shifted.loc[rows, column] * 2
    return shifted


def test_a_column_without_values_in_the_window_is_not_judged_rather_than_an_error() -> None:
    """Days on which a sparse sensor (wind gusts) reported nothing: Evidently refuses an empty column."""
    import numpy as np

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"temp": rng.normal(50, 10, 3000), "gust": rng.normal(20, 5, 3000)})
    current = pd.DataFrame({"temp": rng.normal(50, 10, 2000), "gust": np.nan})
    result = data_drift(current, reference, ["temp", "gust"], [])
    assert result.empty == ["gust"] and [c.column for c in result.columns] == ["temp"]
    assert not result.column("temp").drifted
    with pytest.raises(ValueError, match="no monitored column has values in both"):
        data_drift(current[["gust"]], reference, ["gust"], [])
