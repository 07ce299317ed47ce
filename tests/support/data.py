"""Real data for the tests: the replay days they use, state folders with those days' features
built, and the faults a broken upstream feed would write into them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from include.flights.source import Nycflights13Source
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings

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
def built(source: Nycflights13Source, session_dir: Path) -> Settings:
    """A state folder with a week of features built, applied and materialized (shared, read-only)."""
    from include.flights import pipeline

    settings = Settings(state_dir=session_dir / "built")
    days = pipeline.feature_days(settings, BUILT)  # two days before, for the first departures
    pipeline.validate_batches(settings, pipeline.ingest(settings, days, source))
    pipeline.build_features(settings, days)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, days)
    return settings


@pytest.fixture(scope="session")
def weeks(source: Nycflights13Source, session_dir: Path) -> Path:
    """A state folder with the features of `WEEKS`, built once; tests copy it (`copy_weeks`)."""
    from include.flights import pipeline

    settings = Settings(state_dir=session_dir / "weeks")
    days = pipeline.feature_days(settings, WEEKS)
    pipeline.validate_batches(settings, pipeline.ingest(settings, days, source))
    pipeline.build_features(settings, days)
    return settings.state_dir


def copy_weeks(weeks: Path, to: Path) -> Settings:
    """A private copy of the `weeks` state folder, its Feast definitions applied where it lies."""
    from include.flights import pipeline

    shutil.copytree(weeks, to, dirs_exist_ok=True)
    settings = Settings(state_dir=to)
    pipeline.apply_definitions(settings)  # the registry anchors sources at the state folder's path
    return settings


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
