"""
# Feature pipeline

Hourly. Turns the last hour of flight data into features that are correct as of every prediction
time, in the offline store for training and in the online store for the predictions made on the
hour by `batch_inference`.

1. **ingest**: fetch the data interval's flight outcomes, schedule, departures and weather from the
   source (the 2013 records on the replay clock), plus any history days the lake lacks (7 of
   outcomes, 1 of the schedule and of departures), and keep them raw, never overwritten.
2. **validate**: check schema, types, ranges, duplicates and timestamps; rejected rows go to the
   quarantine with their reason. The task fails, naming the problem, when a batch is broken or
   its rejection rate passes `MLOPS_MAX_REJECT_RATE` (default 5%).
3. **build_features**: weather by origin, aircraft by tail number, trailing delay statistics by
   origin, carrier and route, the departure board of the last two hours by origin and by carrier
   at origin (who left, who was cancelled, and who is still waiting), the aircraft's latest
   departure and its outcome, written as the interval's partition of the offline store (the rows
   stamped in (start, end]).
4. **apply_definitions**: `feast apply`, only when the feature definitions changed (while their
   fingerprint matches the one applied, the task does not even import Feast).
5. **materialize**: push the latest row of each key into the online store through the views'
   push sources (skipped for a view whose later hours are already built: a re-run never puts the
   past over the present), and update the `flight_features` asset. A run of one hour as it
   happened (scheduled, or triggered for its own hour) adds that hour's partition, on which
   `batch_inference` predicts; a longer manual interval or a backfill builds history and adds
   none, so no predictions of the past follow from it.

Every task is idempotent on its data interval: re-running an hour replaces that hour's output.
A manual run may set `interval_start` and `interval_end` to process days at once (history, say);
without them it processes the last whole hour before the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, dag, task

from mlops_airflow.assets import FLIGHT_FEATURES
from mlops_airflow.context import interval_params

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    # A real [start, end) data interval: Airflow 3's plain "@hourly" gives start == end.
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "features", "feast"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
    params=interval_params(),
)
def feature_pipeline():
    @task
    def ingest(**context: Context) -> list[dict[str, str]]:
        from include.flights import pipeline
        from mlops_airflow import lineage
        from mlops_airflow.context import data_interval
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook().get_settings()
        lineage.lake(settings, writes=["raw"])
        return [b.to_dict() for b in pipeline.ingest(settings, data_interval(context))]

    @task
    def validate(batches: list[dict[str, str]]) -> list[dict[str, object]]:
        from include.flights import pipeline
        from mlops_airflow import lineage
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook().get_settings()
        lineage.lake(settings, reads=["raw"], writes=["clean", "quarantine"])
        return pipeline.validate_batches(settings, [pipeline.Batch(**b) for b in batches])

    @task
    def build_features(**context: Context) -> dict[str, int]:
        from include.flights import pipeline
        from mlops_airflow import lineage
        from mlops_airflow.context import data_interval
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook().get_settings()
        lineage.lake(settings, reads=["clean"], writes=["features"])
        return pipeline.build_features(settings, data_interval(context))

    @task
    def apply_definitions() -> list[str]:
        from include.flights import pipeline
        from mlops_airflow.hooks import MlflowHook

        return pipeline.apply_definitions(MlflowHook().get_settings())

    @task(outlets=[FLIGHT_FEATURES])
    def materialize(**context: Context) -> dict[str, object]:
        from include.flights import pipeline
        from mlops_airflow import lineage
        from mlops_airflow.assets import hour_partition
        from mlops_airflow.context import data_interval
        from mlops_airflow.hooks import MlflowHook

        settings, interval = MlflowHook().get_settings(), data_interval(context)
        lineage.lake(settings, reads=["features"])
        done = pipeline.materialize(settings, interval)
        if key := hour_partition(context, interval):
            context["outlet_events"][FLIGHT_FEATURES].add_partitions(key)
        return done

    validated = validate(ingest())
    validated >> build_features() >> apply_definitions() >> materialize()


dag = feature_pipeline()

if __name__ == "__main__":
    dag.test()
