"""
# Feature pipeline

Daily. Turns one day of flight data into features that are correct as of every prediction time.

1. **ingest**: fetch the data interval's flight outcomes and weather from the source (the 2013
   records on the replay clock), plus any of the 7 previous days the lake lacks, and keep them
   raw, never overwritten.
2. **validate**: check schema, types, ranges, duplicates and timestamps; rejected rows go to the
   quarantine with their reason. The task fails, naming the problem, when a batch is broken or
   its rejection rate passes `MLOPS_MAX_REJECT_RATE` (default 5%).
3. **build_features**: weather by origin, aircraft by tail number, trailing delay statistics by
   origin, carrier and route, written as the interval's partition of the offline store.
4. **apply_definitions**: `feast apply`, only when the feature definitions changed.
5. **materialize**: load the interval, with a day of overlap for late data, into the online
   store, and update the `flight_features` asset that downstream DAGs schedule on.

Every task is idempotent on its data interval: re-running a day replaces that day's output.
A manual run without a logical date processes the last whole UTC day before the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, dag, task

from mlops_airflow.assets import FLIGHT_FEATURES

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    # A real [start, end) data interval: Airflow 3's plain "@daily" gives start == end.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "features", "feast"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def feature_pipeline():
    @task
    def ingest(**context: Context) -> list[dict[str, str]]:
        from include.flights import pipeline
        from include.mlops.settings import Settings
        from mlops_airflow.context import data_interval

        return [b.to_dict() for b in pipeline.ingest(Settings.from_env(), data_interval(context))]

    @task
    def validate(batches: list[dict[str, str]]) -> list[dict[str, object]]:
        from include.flights import pipeline
        from include.mlops.settings import Settings

        return pipeline.validate_batches(Settings.from_env(), [pipeline.Batch(**b) for b in batches])

    @task
    def build_features(**context: Context) -> dict[str, int]:
        from include.flights import pipeline
        from include.mlops.settings import Settings
        from mlops_airflow.context import data_interval

        return pipeline.build_features(Settings.from_env(), data_interval(context))

    @task
    def apply_definitions() -> list[str]:
        from include.flights import pipeline
        from include.mlops.settings import Settings

        return pipeline.apply_definitions(Settings.from_env())

    @task(outlets=[FLIGHT_FEATURES])
    def materialize(**context: Context) -> dict[str, str]:
        from include.flights import pipeline
        from include.mlops.settings import Settings
        from mlops_airflow.context import data_interval

        return pipeline.materialize(Settings.from_env(), data_interval(context))

    validated = validate(ingest())
    validated >> build_features() >> apply_definitions() >> materialize()


dag = feature_pipeline()

if __name__ == "__main__":
    dag.test()
