"""Batch inference and drift monitoring on real days: `dag.test()` of both DAGs, real Evidently,
real MLflow, real Feast. The champion is a real model trained on three real weeks.

The days: the champion is trained on 26 October - 8 November 2026 (replaying 11-24 November 2013)
and serves from 9 November, so its first production week (the quality baseline) is 9-15 November.
The weeks fixture holds a month of features (to 23 November), so the checks compare their window
with the week before it (`reference_days: 7`) rather than the default four.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from include import cli
from include.flights import inference, model, monitoring, pipeline, training
from include.mlops import drift, records, registry, tracking
from include.mlops.lake import Interval
from include.mlops.monitoring import data_drift
from include.mlops.settings import Settings
from mlops_airflow.assets import HOUR, HOUR_KEY
from tests.support import scheduler
from tests.support.airflow import finish_training_runs, interval_conf, set_task_state, training_runs
from tests.support.data import copy_weeks, inject_shift

TRAINING = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC))
FIRST_WEEK = Interval(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
RULES = {"policy": {"reference_days": 7}}


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
    batch = bag.get_dag("batch_inference")
    # `dag.test()` cannot end a run of a DAG with a deadline alert (Airflow 3.3.2: it runs the DAG
    # serialized in memory, whose deadline is not yet the stored alert's id, and looks it up by id).
    # The manual runs here go without it; the run the scheduler makes (tests/support/scheduler.py) has it.
    batch.deadline = None
    return batch, bag.get_dag("drift_monitoring")


def run_inference(dag, on: datetime):
    """A manual run that scores the flights departing on the day `on`, in one run."""
    interval = pipeline.interval_predicting(Settings.from_env(), Interval(on, on + timedelta(days=1)))
    conf = interval_conf(interval.start.isoformat(), interval.end.isoformat())
    return dag.test(logical_date=interval.end, run_after=interval.end, run_conf=conf)


def run_monitoring(dag, at: datetime, conf: dict | None = None):
    """The daily check whose run falls on `at` + 01:00 (its window ends at midnight of `at`)."""
    return dag.test(logical_date=at - timedelta(hours=23), run_after=at + timedelta(hours=1), run_conf=conf or {})


def result_of(run) -> dict:
    return next(ti for ti in run.get_task_instances() if ti.task_id == "check").xcom_pull(task_ids="check")


def escalation_asked(run) -> dict:
    """The conf of the `drift_escalation` run the check's escalation triggered."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        asked = session.query(DagRun).filter_by(dag_id="drift_escalation", run_id=f"escalation__{run.run_id}").one()
        return dict(asked.conf)


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def due(run_id: str) -> tuple[datetime | None, datetime]:
    """A training run's logical date and the time it is due (`run_after`)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == "training_pipeline", DagRun.run_id == run_id).one()
        return run.logical_date, run.run_after


def checks(settings: Settings) -> list:
    experiment = tracking.connect(settings, records.DRIFT_EXPERIMENT)
    return MlflowClient().search_runs([experiment], order_by=["start_time ASC"])


def score(settings: Settings, first: int, last: int) -> None:
    for d in range(first, last + 1):
        inference.score(settings, pipeline.interval_predicting(settings, Interval(day(d), day(d + 1))))


def test_batch_inference_skips_while_there_is_no_champion(dags) -> None:
    batch, _ = dags
    run = run_inference(batch, day(2))
    assert states(run)["score"] == "skipped"
    assert not inference.predictions(Settings.from_env(), Interval(day(2), day(3))).shape[0]


def test_batch_inference_then_drift_monitoring_over_real_days(dags, state: Settings) -> None:
    batch, monitor = dags
    registry.move_champion(state, state.model_name, 1, None, "promote", "drift tests", {"actor": "test"})
    tracking.connect(state)
    MlflowClient().set_model_version_tag(state.model_name, "1", "champion_since", FIRST_WEEK.start.isoformat())
    for d in range(9, 16):
        assert run_inference(batch, day(d)).state == "success"

    log = inference.predictions(state, FIRST_WEEK)
    assert len(log) == log["flight_id"].nunique() > 6000
    assert (log["model_version"] == 1).all() and log["prediction"].between(0, 1).all()
    assert (log["event_timestamp"] == (log["sched_dep_at"] - state.prediction_lead).dt.floor("h")).all()
    assert (log["served_from"] == "offline").all()  # a manual run of past days: not the online store
    assert {"weather__temp", "carrier_ops__mean_arr_delay_24h", "carrier"} <= set(log.columns)
    # Scored before they landed: flights without an outcome (cancelled) are in the log too.
    assert log["weather__temp"].notna().mean() > 0.95
    # The schedule each day was scored from is kept raw (beside what the feature pipeline ingested).
    kept = {path.parent.name for path in (state.lake_dir / "raw" / "flight_schedule").glob("*/*.jsonl.gz")}
    assert {Interval(day(d), day(d + 1)).key for d in range(9, 16)} <= kept
    rerun = run_inference(batch, day(15))
    assert rerun.state == "success"
    assert len(inference.predictions(state, FIRST_WEEK)) == len(log)  # replaced, not duplicated
    score(state, 16, 22)

    run = run_monitoring(monitor, day(23), {"rules": RULES})
    assert run.state == "success", states(run)
    assert states(run) == {
        "champion_serving": "success",
        "check": "success",
        "retrain_needed": "success",
        "trigger_training": "success",
        "record_retrain": "success",
        "escalation_needed": "success",
        "escalate": "skipped",
    }
    # 16-22 November replays the first week of December 2013, a stormy one: the champion ranks its
    # flights far worse than those of its first production week, with confidence.
    result = result_of(run)
    assert result["action"] == "retrain" and result["incidents"] == []
    assert result["window"] == "20261116T0000Z_20261123T0000Z"
    assert result["metrics"]["labelled_rows"] > 5000 and result["metrics"]["quality_loss_low"] > 0.05
    assert result["reasons"][0].startswith("quality loss: realised roc_auc")
    assert result["drift_share"] < 0.5  # the inputs the model relies on did not move beyond their usual noise
    assert result["run_url"].startswith(f"{state.mlflow_ui_url}/#/experiments/{result['experiment_id']}/runs/")
    assert result["report_url"] == result["run_url"].replace("?", "/artifacts/drift/report.html?")
    check_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "check")
    assert check_ti.xcom_pull(task_ids="check", key="_link_DriftReportLink") == result["report_url"]
    client = MlflowClient()
    assert {a.path for a in client.list_artifacts(result["run_id"], "drift")} == {
        "drift/report.html",
        "drift/report.json",
    }
    html = client.download_artifacts(result["run_id"], "drift/report.html")
    assert "weather__temp" in Path(html).read_text()
    assert {a.path for a in client.list_artifacts(result["run_id"], "quality")} == {
        "quality/report.html",
        "quality/report.json",
    }
    # The decision counts the drifted columns as the report does (its tests include the prediction's).
    report = json.loads(Path(client.download_artifacts(result["run_id"], "drift/report.json")).read_text())
    drift_tests = [t for t in report["tests"] if "ValueDrift" in t["metric_config"]["params"]["type"]]
    failed = sum(str(t["status"]).endswith("FAIL") for t in drift_tests)
    assert f"{failed} of {len(drift_tests)} columns in the report" in "; ".join(result["reasons"])
    record = json.loads(Path(client.download_artifacts(result["run_id"], "decision.json")).read_text())
    weights = {c["column"]: c["weight"] for c in record["columns"] if c["column"] != "prediction"}
    assert sum(weights.values()) == pytest.approx(1.0)  # the champion's importances, as shares
    assert record["reference"] == FIRST_WEEK.key and record["baseline"] == FIRST_WEEK.key

    [(run_id, conf, _)] = training_runs()
    assert run_id == f"drift__{run.run_id}"
    assert due(run_id) == (None, run.run_after)  # the retrain of the check's day, whenever it ran
    assert conf["reason"].startswith("drift_monitoring 2026-11-23: quality loss: realised roc_auc")
    assert conf["report_url"] == result["report_url"] and conf["not_judged"] == sorted(result["not_judged"])
    assert checks(state)[-1].data.tags["drift.retrain_run_id"] == run_id


def test_no_new_trigger_while_training_is_queued_nor_during_the_cooldown(dags, state: Settings) -> None:
    _, monitor = dags
    score(state, 23, 23)
    queued = run_monitoring(monitor, day(24), {"rules": RULES})
    result = result_of(queued)
    [(training_run, _, _)] = training_runs()
    assert f"a training run is already queued or running: {training_run}" in result["reasons"]
    assert states(queued)["trigger_training"] == "skipped"
    assert checks(state)[-1].data.tags["drift.held_by"] == training_run  # the MLOps view links it

    # The training run looked for its window's features and found some missing: it may wait for
    # hours, and holds nothing back; only the cooldown after the retrain it answers holds this one.
    set_task_state("training_pipeline", training_run, "features_ready", "up_for_reschedule")
    waiting = result_of(run_monitoring(monitor, day(24), {"rules": RULES}))
    assert waiting["action"] == "hold" and not any(r.startswith("a training run is") for r in waiting["reasons"])
    assert any(r.startswith("cooling down after") for r in waiting["reasons"])
    assert f"not held by {training_run} waiting for features" in "; ".join(waiting["reasons"])
    assert checks(state)[-1].data.tags["drift.held_by"] == ""

    finish_training_runs("failed")
    cooling = monitoring.check(state, day(24), rules=monitoring.load_rules(RULES))
    assert cooling.action == "hold" and any(r.startswith("cooling down after") for r in cooling.reasons)
    assert len(training_runs()) == 1
    assert cooling.escalation_conf() is None  # the retrain has no gate decision yet


def test_escalation_when_retraining_did_not_help(dags, state: Settings) -> None:
    """The retrain learned the same model again; a gate that demands an improvement rejects it; the
    quality loss persists. With one retrain allowed to fail, a person is called, once."""
    from include.flights import gating

    _, monitor = dags
    [(training_run, _, _)] = training_runs()
    tracking.connect(state)
    champion = MlflowClient().get_model_version(state.model_name, "1")
    version, _ = training.register_version(state, champion.source)
    context = {"airflow.dag_id": "training_pipeline", "airflow.run_id": training_run, "airflow.try_number": "1"}
    demanding = gating.load_rules(
        yaml.safe_load(gating.DEFAULT_RULES.read_text()) | {"significance": {"min_effect": 0.0}}
    )
    gated = gating.evaluate_candidate(state, version, day(23), demanding, context=context)
    assert gated.outcome == "reject"

    rules = {"policy": {"reference_days": 7, "escalate_after_retrains": 1}}
    run = run_monitoring(monitor, day(24), {"rules": rules})
    assert states(run)["escalate"] == "success", states(run)
    asked = escalation_asked(run)  # a person is asked what to do (tests/dags/test_drift_escalation.py)
    assert asked["kind"] == "retrain_did_not_help" and asked["model"] == "flight_delay"
    assert asked["monitoring_run_id"] == checks(state)[-1].info.run_id
    message = asked["message"]
    assert "the condition persists since 2026-11-23T00:00:00+00:00" in message
    assert f"version {version} rejected by the gate" in message and "quality loss" in message
    assert checks(state)[-1].data.tags["drift.escalation_kind"] == "retrain_did_not_help"

    again = monitoring.check(state, day(24), rules=monitoring.load_rules(rules))  # the same condition: no second alert
    assert again.action == "hold" and again.escalation_conf() is None


def test_a_broken_weather_feed_is_an_incident_a_person_is_called_and_nothing_is_retrained(
    dags, state: Settings
) -> None:
    """Temperature in °C instead of °F, and a carrier's delays doubled, in three days' features."""
    _, monitor = dags
    broken = Interval(day(20), day(23))
    inject_shift(state, broken)
    score(state, 20, 22)
    run = run_monitoring(monitor, day(23), {"window_days": 3, "rules": RULES})
    assert states(run)["trigger_training"] == "skipped" and states(run)["escalate"] == "success"
    result = result_of(run)
    assert result["action"] == "incident" and result["escalation_kind"] == "data_quality"
    assert "weather__temp out_of_range" in result["incidents"]
    assert result["reasons"][0].startswith("data-quality incident: ") and "weather__temp" in result["reasons"][0]
    asked = escalation_asked(run)
    assert asked["kind"] == "data_quality" and "weather__temp" in asked["message"]
    assert checks(state)[-1].data.tags["drift.incidents"].startswith("weather__temp out_of_range")
    assert len(training_runs()) == 1  # no retrain on broken data


def test_an_hour_of_features_makes_its_predictions_and_a_day_of_predictions_its_check(dags, state: Settings) -> None:
    """The asset-driven schedules, with the scheduler's own step making the runs (tests/support/scheduler.py):
    an hour's partition of `flight_features` makes a `batch_inference` run that predicts at that
    hour's end and updates `flight_delay_predictions` with the hour's key; once all 24 hours of a
    day are in, `drift_monitoring` checks the window that ends with that day. The other 23 hours'
    events are registered directly, as their runs' `score` tasks would register them."""
    from airflow.assets.manager import AssetManager
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    scheduler.unpause("batch_inference", "drift_monitoring")
    hour = day(23) + timedelta(hours=10)
    with create_session() as session:
        features = session.query(AssetModel).filter_by(name="flight_features").one()
        AssetManager.register_asset_change(asset=features, partition_key=hour.strftime(HOUR_KEY), session=session)
    [(dag_id, run_id)] = scheduler.make_partition_runs()
    scored = scheduler.run(dag_id, run_id)
    assert (dag_id, scored.state, scored.partition_key) == ("batch_inference", "success", "2026-11-23T10:00:00")
    predicted = inference.predictions(state, pipeline.departures_predicted_in(state, Interval(hour, hour + HOUR)))
    assert len(predicted) > 50 and (predicted["event_timestamp"] == hour + HOUR).all()
    with create_session() as session:
        [event] = session.query(AssetEvent).filter_by(source_dag_id="batch_inference", source_run_id=run_id).all()
        assert (event.asset.name, event.partition_key) == ("flight_delay_predictions", "2026-11-23T10:00:00")
        assert scheduler.make_partition_runs() == []  # one hour of the day is not the day
        for other in range(24):
            if other != 10:
                key = (day(23) + timedelta(hours=other)).strftime(HOUR_KEY)
                AssetManager.register_asset_change(asset=event.asset, partition_key=key, session=session)
    [(dag_id, run_id)] = scheduler.make_partition_runs()
    checked = scheduler.run(dag_id, run_id)
    assert (dag_id, checked.state, checked.partition_key) == ("drift_monitoring", "success", "2026-11-23")
    assert result_of(checked)["window"] == "20261117T0000Z_20261124T0000Z"  # the week that ends with the day


def test_a_window_without_predictions_is_skipped_with_a_message(state: Settings) -> None:
    result = monitoring.check(state, day(1), days=7, rules=monitoring.load_rules(RULES))
    assert result.action == "skip" and result.report_url == "" and result.run_url
    assert result.reasons[0].startswith("drift not judged: 0 current rows (at least 1000)")
    assert result.reasons[1].startswith("quality not judged")


def test_the_reports_verdicts_are_the_checks_and_the_lean_path_gives_the_same(weeks: Path, tmp_path: Path) -> None:
    """Evidently's ValueDrift metrics and tests, each with the column's own threshold, are the verdicts
    of the check, and the same verdicts come without the report."""
    settings = copy_weeks(weeks, tmp_path / "state")
    week = pipeline.training_set(settings, Interval(day(16), day(23)))
    inputs = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
    week = model.model_input(week, inputs).sample(frac=1, random_state=7)
    first, second = week.iloc[: len(week) // 2], week.iloc[len(week) // 2 :]
    rules = monitoring.load_rules()
    numeric, categorical = monitoring.monitored(inputs, rules.report)
    thresholds = rules.calibration.thresholds("production")
    result = data_drift(second, first, numeric, categorical, thresholds, rules.report)
    exported = result.snapshot.dict()
    scores = {m["config"]["column"]: m["value"] for m in exported["metrics"] if "ValueDrift" in m["config"]["type"]}
    failed = {
        t["metric_config"]["params"]["column"]
        for t in exported["tests"]
        if "ValueDrift" in t["metric_config"]["params"]["type"] and str(t["status"]).endswith("FAIL")
    }
    assert {c.column: (c.score, c.drifted) for c in result.columns} == {c: (scores[c], c in failed) for c in scores}
    assert {c.column: c.threshold for c in result.columns} == {c: thresholds[c] for c in scores}
    lean = data_drift(second, first, numeric, categorical, thresholds, rules.report, report=False)
    assert lean.columns == result.columns and lean.snapshot is None
    # Two halves of one week: thresholds calibrated on whole weeks let a few low-variance columns
    # cross on half the rows (sampling noise), never a share of the columns that could ask for a retrain.
    assert sum(c.drifted for c in result.columns) / len(result.columns) < 0.15


def test_drift_rules_errors_name_the_problem() -> None:
    with pytest.raises(drift.DriftRulesError, match="unknown drift rule sections: polcy"):
        monitoring.load_rules({"polcy": {}})
    with pytest.raises(drift.DriftRulesError, match="report: unknown drift report fields: treshold"):
        monitoring.load_rules({"report": {"treshold": 0.1}})
    with pytest.raises(drift.DriftRulesError, match="share_threshold must be in"):
        monitoring.load_rules({"policy": {"share_threshold": 2}})
    with pytest.raises(drift.DriftRulesError, match="does not exist"):
        monitoring.load_rules("missing.yaml")
    seasonal = monitoring.load_rules({"policy": {"reference": "seasonal"}})
    with pytest.raises(drift.DriftRulesError, match="no drift thresholds are calibrated for the 'seasonal' reference"):
        seasonal.calibration.thresholds("seasonal")


def test_cli_score_and_drift_with_the_training_reference(
    state: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["score", "--start", "2026-11-19", "--end", "2026-11-20"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model_version"] == 1 and scored["rows"] > 700
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"policy": {"reference": "training"}}))
    assert cli.main(["drift", "--at", "2026-11-20", "--days", "7", "--rules", str(rules)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["drift_share"] is not None  # judged against the champion's training sample
    assert checks(state)[-1].data.tags["drift.reference"] == "training"
    assert cli.main(["drift", "--at", "2026-11-13", "--days", "0"]) == 2
    assert "the drift window must be at least one day" in capsys.readouterr().err


def test_a_column_without_values_in_the_window_is_not_judged_rather_than_an_error() -> None:
    """Days on which a sparse sensor (wind gusts) reported nothing: Evidently refuses an empty column."""
    import numpy as np

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"temp": rng.normal(50, 10, 3000), "gust": rng.normal(20, 5, 3000)})
    current = pd.DataFrame({"temp": rng.normal(50, 10, 2000), "gust": np.nan})
    result = data_drift(current, reference, ["temp", "gust"], [], {"temp": 0.1, "gust": 0.1})
    assert result.not_judged == {"gust": "no value in the window"}
    assert [c.column for c in result.columns] == ["temp"] and not result.column("temp").drifted
    unknown = data_drift(current, reference, ["temp"], [], {})
    assert unknown.not_judged == {"temp": "no calibrated threshold"} and unknown.columns == []
