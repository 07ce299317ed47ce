"""Shared fixtures. Airflow reads its configuration on import, so the environment is set first:
every test session gets its own Airflow home (SQLite) and its own state folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLOPS_STATE_DIR": str(_SESSION_DIR / "state"),
        "MLOPS_PROFILE": "embedded",
    }
)

from include.flights.source import Nycflights13Source  # noqa: E402
from include.mlops.lake import Interval, Lake  # noqa: E402
from include.mlops.settings import Settings  # noqa: E402

# Real replay days: 2026-11-16 .. 2026-11-30 replays 2013-12-02 .. 2013-12-16, a stormy fortnight.
BUILT = Interval(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
# Four weeks for training and the week after them for the promotion gate's evaluation.
WEEKS = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
SHIFTED_CARRIER = "UA"  # whose delay features `inject_shift` doubles


@pytest.fixture(scope="session")
def source() -> Nycflights13Source:
    return Nycflights13Source()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh, empty state folder."""
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture(scope="session")
def built(source: Nycflights13Source) -> Settings:
    """A state folder with a week of features built, applied and materialized (shared, read-only)."""
    from include.flights import pipeline

    settings = Settings(state_dir=_SESSION_DIR / "built")
    batches = pipeline.ingest(settings, BUILT, source)
    pipeline.validate_batches(settings, batches)
    pipeline.build_features(settings, BUILT)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, BUILT)
    return settings


@pytest.fixture(scope="session")
def weeks(source: Nycflights13Source) -> Path:
    """A state folder with the features of `WEEKS`, built once; tests copy it (`copy_weeks`)."""
    from include.flights import pipeline

    settings = Settings(state_dir=_SESSION_DIR / "weeks")
    pipeline.validate_batches(settings, pipeline.ingest(settings, WEEKS, source))
    pipeline.build_features(settings, WEEKS)
    return settings.state_dir


def copy_weeks(weeks: Path, to: Path) -> Settings:
    """A private copy of the `weeks` state folder, its Feast definitions applied where it lies."""
    from include.flights import pipeline

    shutil.copytree(weeks, to, dirs_exist_ok=True)
    settings = Settings(state_dir=to)
    pipeline.apply_definitions(settings)  # the registry anchors sources at the state folder's path
    return settings


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) for this session."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ,
    )
    return Path(os.environ["AIRFLOW_HOME"])


def inject_shift(settings: Settings, window: Interval) -> None:
    """The same shift in the offline store's feature rows stamped in `window` (weather and carrier
    operations), as a broken upstream feed would write them."""
    lake = Lake(settings.lake_dir)
    for view, change in (
        ("weather", lambda f: f.assign(temp=(f["temp"] - 32) * 5 / 9)),
        ("carrier_ops", double_delays),
    ):
        for path in lake.partitions("features", view, window):
            frame = pd.read_parquet(path)
            inside = (frame["event_timestamp"] >= window.start) & (frame["event_timestamp"] < window.end)
            frame.loc[inside] = change(frame.loc[inside])
            frame.to_parquet(path, index=False)


def double_delays(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame["carrier"] == SHIFTED_CARRIER
    columns = [c for c in frame.columns if c.startswith("mean_arr_delay")]
    frame = frame.copy()
    frame.loc[rows, columns] = frame.loc[rows, columns] * 2
    return frame


def finish_training_runs(state: str) -> None:
    """Put the training runs that drift checks triggered (`drift__...`) in `state`."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all():
            if run.run_id.startswith("drift__"):
                run.state = state


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
