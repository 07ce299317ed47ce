"""Training on real weeks with real MLflow (SQLite in a temp folder) and real Feast."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from include.flights import model, training
from include.mlops import tracking
from include.mlops.feature_store import load_store
from include.mlops.lake import Interval
from include.mlops.settings import Settings
from tests.support.data import copy_weeks

WINDOW = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))
FAST = model.ModelConfig(max_iter=30)


@pytest.fixture
def fresh(weeks: Path, tmp_path: Path) -> Settings:
    return copy_weeks(weeks, tmp_path / "state")


def test_a_training_run_records_everything_and_registers_a_version(fresh: Settings) -> None:
    airflow = {"airflow.dag_id": "training_pipeline", "airflow.run_id": "manual__x", "airflow.try_number": "1"}
    result = training.train(fresh, WINDOW, FAST, configurations=2, reason="test", airflow=airflow)
    tracking.connect(fresh)
    client = MlflowClient()

    version = client.get_model_version("flight_delay", str(result["version"]))
    assert version.tags["feast.feature_service"] == "flight_delay_v1"
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert {"family", "learning_rate", "max_iter", "seed", "threshold", "train_rows"} <= set(run.data.params)
    # The last 7 days are left to the promotion gate: neither training nor validation sees them.
    assert run.data.params["evaluation_start"] == (WINDOW.end - timedelta(days=7)).isoformat()
    assert run.data.params["validation_cutoff"] == (WINDOW.end - timedelta(days=10)).isoformat()
    assert 0.05 < float(run.data.params["train_positive_rate"]) < 0.6
    importance = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/importance.json")
    assert set(importance) == set(mlflow.models.Model.load(version.source).get_input_schema().input_names())
    assert max(importance, key=importance.get) != "aircraft__seats"  # the model leans on delays and weather
    metrics = run.data.metrics
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall"):
        assert 0 <= metrics[name] <= 10, name
    assert metrics["roc_auc"] > 0.6
    assert metrics["origin.JFK.size"] > 100 and "carrier.UA.roc_auc" in metrics
    tags = run.data.tags
    assert tags["airflow.dag_id"] == "training_pipeline" and tags["airflow.try_number"] == "1"
    assert tags["trigger_reason"] == "test"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["feast.feature_service"] == "flight_delay_v1"
    assert tags["training_window.start"] == WINDOW.start.isoformat()
    assert tags["mlflow.parentRunId"] == result["parent_run_id"]

    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation"}
    assert all(d.digest and d.source for d in inputs.values())

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    names = ("roc_curve", "pr_curve", "calibration_curve", "confusion_matrix", "feature_importance")
    assert artifacts == {f"plots/{n}.png" for n in names}
    assert client.list_artifacts(run.info.run_id, "reference")

    logged = mlflow.models.get_model_info(version.source)
    assert logged.signature is not None and logged.saved_input_example_info is not None
    loaded = mlflow.sklearn.load_model(version.source)  # skops, with the trusted types saved beside it
    assert (
        loaded.predict_proba(mlflow.models.Model.load(version.source).load_input_example(version.source)).shape[1] == 2
    )

    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result['parent_run_id']}'"
    )
    assert len(children) == 2
    assert load_store(fresh).get_feature_service("flight_delay_v1")


def test_the_split_leaves_the_last_week_to_the_gate(fresh: Settings) -> None:
    prepared = training.prepare(fresh, WINDOW, "split")
    train, validation = pd.read_parquet(prepared.train_path), pd.read_parquet(prepared.validation_path)
    evaluation_start, cutoff = (
        datetime.fromisoformat(prepared.evaluation_start),
        datetime.fromisoformat(prepared.cutoff),
    )
    assert evaluation_start == WINDOW.end - timedelta(days=7) and cutoff == evaluation_start - timedelta(days=3)
    assert train["sched_dep_at"].max() < cutoff and train["label_at"].max() < cutoff
    assert validation["sched_dep_at"].min() >= cutoff and validation["sched_dep_at"].max() < evaluation_start
    assert validation["label_at"].max() < evaluation_start  # no label from the gate's days either
    with pytest.raises(training.TrainingDataError, match="too short: 3 days of validation and 7 days held out"):
        training.split(train, Interval(WINDOW.end - timedelta(days=10), WINDOW.end))


def test_same_inputs_and_seed_give_identical_metrics(fresh: Settings) -> None:
    prepared = training.prepare(fresh, WINDOW, "reproducible")
    parent = tracking.start_run(fresh, "parent", training.training_run(WINDOW, "test").tags())
    config = replace(FAST, family="hist_gradient_boosting")
    first = training.train_candidate(fresh, prepared, config, parent, {})
    second = training.train_candidate(fresh, prepared, config, parent, {})
    assert first["metrics"] == second["metrics"]
    assert first["run_id"] != second["run_id"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Midnight to 1 am in New York: nothing departs and lands within the hour.
        (
            {"window": Interval(datetime(2026, 11, 20, 5, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC))},
            "empty window",
        ),
        (
            {"window": Interval(datetime(2026, 10, 19, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC))},
            "features missing for 7 of the window's days",
        ),
        ({"settings": {"late_minutes": -10_000}}, "single-class labels: every training flight"),
        ({"min_rows": 10**6}, "too few rows"),
        ({"drop_view": "weather"}, "features missing from the feature service"),
    ],
    ids=["empty window", "window without features", "single class", "too few rows", "features not served"],
)
def test_bad_training_data_fails_before_training_and_registers_nothing(
    fresh: Settings, change: dict, message: str
) -> None:
    settings = replace(fresh, **change.get("settings", {}))
    if "drop_view" in change:  # the view's partitions hold no rows: nothing to serve
        for partition in (settings.lake_dir / "features" / change["drop_view"]).glob("*.parquet"):
            pd.read_parquet(partition).iloc[0:0].to_parquet(partition)
    window = change.get("window", WINDOW)
    tags = training.training_run(window, "test").tags()
    parent = tracking.start_run(settings, "bad input", tags)
    with pytest.raises(training.TrainingDataError, match=message):
        try:
            training.prepare(settings, window, parent, min_rows=change.get("min_rows", 1000))
        except training.TrainingDataError as error:
            tracking.fail_run(parent, error)
            raise
    client = MlflowClient()
    assert client.get_run(parent).info.status == "FAILED"
    assert message.split(":")[0] in client.get_run(parent).data.tags["error"]
    assert client.search_registered_models() == []


def test_close_fails_the_runs_that_died_attempts_left_open(fresh: Settings) -> None:
    tags = training.training_run(WINDOW, "test").tags()
    parent = tracking.start_run(fresh, "training", tags)
    died = tracking.start_run(fresh, "hist_gradient_boosting", tags, parent_run_id=parent)  # its worker was killed
    retried = tracking.start_run(fresh, "hist_gradient_boosting", tags, parent_run_id=parent)
    tracking.finish_run(retried)
    tracking.finish_run(parent)  # registered

    assert training.close(fresh, parent) == [died]
    client = MlflowClient()
    assert client.get_run(died).info.status == "FAILED"
    assert "a retry trained again" in client.get_run(died).data.tags["error"]
    assert {client.get_run(r).info.status for r in (retried, parent)} == {"FINISHED"}
    assert training.close(fresh, parent) == []  # closing twice changes nothing

    unregistered = tracking.start_run(fresh, "training", tags)
    assert training.close(fresh, unregistered) == [unregistered]
    assert client.get_run(unregistered).data.tags["error"].startswith("a training or registration task failed")
