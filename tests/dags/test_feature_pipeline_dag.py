"""The feature_pipeline DAG with `dag.test()`: a manual run builds a real day in one go, then the
scheduled run of the next hour pushes that hour into the online store, which serves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.flights import features
from include.flights.source import Nycflights13Source
from include.mlops.feature_store import load_store
from include.mlops.lake import Lake
from include.mlops.settings import Settings
from tests.support.airflow import interval_conf
from tests.support.online import serve
from tests.support.scheduler import make_partition_runs, unpause

# 2026-11-25 replays 2013-12-11; the hour after it is 00:00-01:00 on the 26th.
DAY = (datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC))
HOUR = (DAY[1], DAY[1] + timedelta(hours=1))
TASKS = ["ingest", "validate", "build_features", "apply_definitions", "materialize"]


@pytest.fixture(scope="module")
def runs(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    conf = interval_conf(DAY[0].isoformat(), DAY[1].isoformat())
    day = DagBag().get_dag("feature_pipeline").test(logical_date=DAY[1], run_conf=conf)
    unpause("batch_inference")  # the DAG its hour's partition schedules (the day's run gave it its row)
    # As scheduled: its data interval is the hour that ends there. (A DAG object keeps the params
    # of its last `dag.test`, so this run gets its own.)
    hour = DagBag().get_dag("feature_pipeline").test(logical_date=HOUR[1])
    return day, hour


def test_a_manual_run_builds_a_day_and_the_scheduled_run_its_hour(runs) -> None:
    day, hour = runs
    for run in runs:
        assert run.state == "success"
        assert {ti.task_id: ti.state for ti in run.get_task_instances()} == dict.fromkeys(TASKS, "success")
    assert (hour.data_interval_start, hour.data_interval_end) == HOUR
    lake = Lake(Settings.from_env().lake_dir)
    keys = {path.stem for path in lake.partitions("features", "weather")}
    assert keys == {"20261125T0000Z_20261126T0000Z", "20261126T0000Z_20261126T0100Z"}
    materialize = next(ti for ti in day.get_task_instances() if ti.task_id == "materialize")
    pushed = materialize.xcom_pull(task_ids="materialize")
    assert pushed["skipped"] == [] and pushed["pushed"]["route_ops"] > 100


def test_online_store_serves_the_hour_just_built(runs, source: Nycflights13Source) -> None:
    settings = Settings.from_env()
    flights = source.flight_schedule(*DAY)  # the airports, carriers, routes and aircraft of a day
    online = serve(load_store(settings), flights)

    end = int(pd.Timestamp(HOUR[1]).timestamp())  # the row stamped at the hour's end is known then
    for view in features.OPERATIONS_KEYS:
        known = online[f"{view}__stats_as_of_unix"].notna()
        assert known.mean() > 0.9, view
        assert (online.loc[known, f"{view}__stats_as_of_unix"] <= end).all(), view
    assert (online["origin_ops__stats_as_of_unix"] == end).all()  # every airport had flights that week
    assert (online["origin_departures__departures_as_of_unix"] == end).all()
    assert set(flights["origin"]) == {"EWR", "JFK", "LGA"}
    assert online["weather__temp"].notna().all()
    assert (online["weather__observed_at_unix"] == end).all()  # the hour's observation, published at its end

    known_planes = flights["tailnum"].isin(source.planes()["tailnum"]).to_numpy()
    assert known_planes.sum() > 500
    assert online.loc[known_planes, "aircraft__seats"].notna().all()


def test_each_run_updates_the_flight_features_asset_and_the_hour_makes_its_predictions_run(runs) -> None:
    """Both runs update `flight_features`; only the hour's run adds a partition (its hour), and
    the scheduler makes one `batch_inference` run of it, whose data interval is that hour."""
    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    day, hour = runs
    with create_session() as session:
        for run, partition in ((day, None), (hour, "2026-11-26T00:00:00")):
            events = (
                session.query(AssetEvent)
                .filter(AssetEvent.source_dag_id == "feature_pipeline", AssetEvent.source_run_id == run.run_id)
                .all()
            )
            assert [(e.asset.name, e.source_task_id, e.partition_key) for e in events] == [
                ("flight_features", "materialize", partition)
            ]
    [(dag_id, run_id)] = make_partition_runs()
    with create_session() as session:
        made = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        assert (dag_id, made.run_type) == ("batch_inference", "asset_triggered")
        assert made.partition_key == "2026-11-26T00:00:00"
        assert made.partition_date == HOUR[0] and made.state == "queued"
        made.state = "failed"  # not run here (no champion): the drift tests run one end to end
