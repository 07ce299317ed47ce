"""
# Batch inference

Daily. The champion scores the day's flights; the predictions log is what `drift_monitoring` watches.

1. **features_ready**: a sensor that waits (rescheduling itself, holding no worker slot) until
   `feature_pipeline` has built the features of the interval and of the prediction lead before
   it; it gives up after 12 hours.
2. **score**: loads the version the alias `champion` points to, scores every flight scheduled to
   depart in the data interval with the features known at its prediction time (Feast's
   point-in-time join through that version's feature service), and replaces the interval's
   partition of the predictions log (flight, prediction time, features used, probability, model
   version and run) in the offline store. Re-running a day replaces its predictions, never
   duplicates them. Updates the `flight_delay_predictions` asset. Skips, saying so, while no model
   is champion yet.

A manual run without a logical date scores the last whole UTC day before the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, dag, task

from mlops_airflow.assets import PREDICTIONS

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "inference"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def batch_inference():
    @task.sensor(poke_interval=timedelta(minutes=5), timeout=timedelta(hours=12), mode="reschedule")
    def features_ready(**context: Context) -> PokeReturnValue:
        import logging

        from include.flights import pipeline
        from include.mlops.settings import Settings
        from mlops_airflow.context import data_interval

        missing = pipeline.days_without_features(Settings.from_env(), data_interval(context))
        if missing:
            logging.getLogger(__name__).info("Waiting for feature_pipeline: no features yet for %s", ", ".join(missing))
        return PokeReturnValue(is_done=not missing)

    @task(outlets=[PREDICTIONS])
    def score(**context: Context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.flights import inference
        from mlops_airflow.context import data_interval
        from mlops_airflow.hooks import MlflowHook

        try:
            return inference.score(MlflowHook().get_settings(), data_interval(context))
        except inference.NoChampionError as error:
            raise AirflowSkipException(str(error)) from None

    features_ready() >> score()


dag = batch_inference()

if __name__ == "__main__":
    dag.test()
