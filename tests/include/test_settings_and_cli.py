"""Settings from the environment, and the command line that runs each step outside Airflow."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.mlops.settings import Settings, SettingsError
from tests.support import ROOT
from tests.support.data import BUILT


def test_settings_read_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "MLOPS_STATE_DIR": str(tmp_path),
            "MLOPS_PREDICTION_LEAD_MINUTES": "90",
            "MLOPS_MAX_REJECT_RATE": "0.1",
            "MLOPS_HISTORY_DAYS": "14",
            "MLOPS_REPLAY_WEEKS_AHEAD": "26",
        }
    )
    assert settings.state_dir == tmp_path
    assert settings.prediction_lead == timedelta(minutes=90)
    assert settings.max_reject_rate == 0.1
    assert settings.history == timedelta(days=14)
    assert settings.replay_weeks_ahead == 26
    assert Settings.from_env({}).profile == "embedded"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MLOPS_MAX_REJECT_RATE": "lots"}, "MLOPS_MAX_REJECT_RATE must be a number, got 'lots'"),
        ({"MLOPS_MAX_REJECT_RATE": "1.5"}, r"within \[0, 1\]"),
        ({"MLOPS_PROFILE": "cloud"}, "'embedded' or 'production'"),
        ({"MLOPS_HISTORY_DAYS": "3"}, "at least 7"),
        ({"MLOPS_REPLAY_WEEKS_AHEAD": "52"}, r"MLOPS_REPLAY_WEEKS_AHEAD must be .* within 0\.\.51, got 52"),
        ({"MLOPS_REPLAY_WEEKS_AHEAD": "-1"}, "within 0..51, got -1"),
        ({"MLOPS_REPLAY_WEEKS_AHEAD": "2.5"}, "MLOPS_REPLAY_WEEKS_AHEAD must be a whole number, got '2.5'"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"MLOPS_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "include.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_mlflow_is_reached_through_its_airflow_connection_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_airflow.hooks import MlflowHook

    monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", "http://from-the-environment:5000")
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.example.org/")
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    assert MlflowHook().get_settings().mlflow_tracking_uri == "http://from-the-environment:5000"

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", "http://mlflow:5000")
    settings = MlflowHook().get_settings()
    assert (settings.mlflow_tracking_uri, settings.mlflow_ui_url) == (
        "http://mlflow:5000",
        "https://mlflow.example.org",
    )
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", '{"conn_type": "http", "host": "mlflow", "schema": "https", '
                       '"extra": {"ui_url": "https://ui.example.org"}}')  # fmt: skip
    settings = MlflowHook().get_settings()
    assert (settings.mlflow_tracking_uri, settings.mlflow_ui_url) == ("https://mlflow", "https://ui.example.org")


def test_an_mlflow_connection_with_credentials_is_refused_and_nothing_enters_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_airflow.hooks import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", "http://someone:secret@mlflow:5000")
    with pytest.raises(ValueError, match=r"connection mlflow_default has credentials.*MLFLOW_TRACKING_USERNAME"):
        MlflowHook().get_settings()
    assert "secret" not in os.environ.values()


def test_cli_builds_a_training_set_into_parquet(built: Settings, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    result = cli(
        "training-set", "--start", "2026-11-24", "--end", "2026-11-25", "--out", str(out), state=built.state_dir
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    assert 600 < len(frame) < 1200  # a day's departures whose outcome was known by the day's end
    assert (frame["label_at"] < pd.Timestamp("2026-11-25", tz="UTC")).all()
    assert {"is_late", "event_timestamp", "route_ops__late_share_24h", "weather__temp"} <= set(frame.columns)
    assert BUILT.start <= frame["sched_dep_at"].min()


def test_cli_names_a_bad_interval(tmp_path: Path) -> None:
    result = cli("features", "--start", "2026-11-25", "--end", "2026-11-24", state=tmp_path)
    assert result.returncode == 2
    assert "error: empty interval: end 2026-11-24T00:00:00+00:00 is not after start" in result.stderr


def test_cli_explains_a_missing_lake(tmp_path: Path) -> None:
    result = cli("features", "--start", "2026-11-24", "--end", "2026-11-25", state=tmp_path)
    assert result.returncode == 2
    assert "no clean flight_outcomes rows in the lake" in result.stderr
    assert "run ingest and validate first" in result.stderr


def test_materialization_does_not_follow_the_host_time_zone(settings: Settings, source, tmp_path: Path) -> None:
    """A day's features, loaded online from a New York host: the latest rows are those stamped at the
    day's end in UTC (DuckDB and pandas sessions default to the host's time zone)."""
    from datetime import UTC, datetime

    from include.flights import pipeline
    from include.mlops.feature_store import load_store
    from include.mlops.lake import Interval
    from tests.support.online import serve

    day = Interval(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    pipeline.validate_batches(settings, pipeline.ingest(settings, day, source))
    pipeline.build_features(settings, day)
    env = os.environ | {"TZ": "America/New_York", "MLOPS_STATE_DIR": str(settings.state_dir), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "include.cli", "materialize", "--start", "2026-11-24", "--end", "2026-11-25"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    served = serve(load_store(settings), source.flight_outcomes(day.start, day.end))
    assert (served["origin_ops__stats_as_of_unix"] == day.end.timestamp()).all()
    assert (served["weather__observed_at_unix"] == day.end.timestamp()).all()
