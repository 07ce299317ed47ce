"""Re-running an interval replaces its output: offline partitions and online rows stay identical."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from include.flights import pipeline
from include.flights.source import Nycflights13Source
from include.mlops.lake import Interval
from include.mlops.settings import Settings

DAY = Interval(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))


def run_day(settings: Settings, source: Nycflights13Source) -> None:
    pipeline.validate_batches(settings, pipeline.ingest(settings, DAY, source))
    pipeline.build_features(settings, DAY)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, DAY)


def offline_snapshot(settings: Settings) -> dict[str, bytes]:
    lake = settings.lake_dir
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


def online_snapshot(settings: Settings) -> dict[str, list[tuple]]:
    with sqlite3.connect(Path(settings.feast_dir) / "online.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: sorted(db.execute(f"SELECT entity_key, feature_name, value, event_ts FROM {table}").fetchall())
            for table in tables
        }


def test_running_the_same_interval_twice_changes_nothing(settings: Settings, source: Nycflights13Source) -> None:
    run_day(settings, source)
    offline, online = offline_snapshot(settings), online_snapshot(settings)
    run_day(settings, source)
    assert offline_snapshot(settings) == offline
    assert online_snapshot(settings) == online
    assert sum(len(rows) for rows in online.values()) > 10_000
    feature_files = [name for name in offline if name.startswith("features/route_ops/")]
    assert feature_files == [f"features/route_ops/{DAY.key}.parquet"]
