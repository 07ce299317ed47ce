"""The feature_pipeline DAG over a real day with `dag.test()`, then the online store serves that day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from include.flights import features
from include.flights.source import Nycflights13Source
from include.mlops.feature_store import load_store
from include.mlops.settings import Settings
from tests.online import serve

# A @daily run with this logical date processes the day before it: 2026-11-25, replaying 2013-12-11.
LOGICAL_DATE = datetime(2026, 11, 26, tzinfo=UTC)
DAY = (datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC))


@pytest.fixture(scope="module")
def dag_run(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag().get_dag("feature_pipeline")
    return dag.test(logical_date=LOGICAL_DATE)


def test_dag_run_succeeds_over_the_data_interval(dag_run) -> None:
    assert dag_run.state == "success"
    assert (dag_run.data_interval_start, dag_run.data_interval_end) == DAY
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == dict.fromkeys(
        ["ingest", "validate", "build_features", "apply_definitions", "materialize"], "success"
    )


def test_online_store_serves_the_days_airports_carriers_routes_and_aircraft(
    dag_run, source: Nycflights13Source
) -> None:
    settings = Settings.from_env()
    flights = source.flight_outcomes(*DAY)
    online = serve(load_store(settings), flights)

    last_hour = int((pd.Timestamp(DAY[1]) - pd.Timedelta(hours=1)).timestamp())
    for view in features.OPERATIONS_KEYS:
        assert online[f"{view}__n_flights_7d"].notna().all(), view
        assert (online[f"{view}__stats_as_of_unix"] == last_hour).all(), view
    last_mark = int((pd.Timestamp(DAY[1]) - features.DEPARTURE_STEP).timestamp())
    assert (online["origin_departures__departures_as_of_unix"] == last_mark).all()
    assert online["carrier_departures__n_departures_2h"].notna().mean() > 0.9  # a carrier quiet all day has none
    assert set(flights["origin"]) == {"EWR", "JFK", "LGA"}
    assert online["weather__temp"].notna().all()
    assert (online["weather__observed_at_unix"] < DAY[1].timestamp()).all()

    known_planes = flights["tailnum"].isin(source.planes()["tailnum"]).to_numpy()
    assert known_planes.sum() > 500
    assert online.loc[known_planes, "aircraft__seats"].notna().all()


def test_the_run_updates_the_flight_features_asset(dag_run) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .filter(AssetEvent.source_dag_id == "feature_pipeline", AssetEvent.source_run_id == dag_run.run_id)
            .all()
        )
        assert [(event.asset.name, event.source_task_id) for event in events] == [("flight_features", "materialize")]
