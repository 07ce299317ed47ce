"""
# Batch inference

Hourly. At the end of each hour the champion predicts the flights whose prediction time it is:
those departing 3 to 4 hours later (the default lead is 2 hours; a flight is predicted on the
last hour at or before its departure minus the lead). The predictions log is what
`drift_monitoring` watches.

1. **features_ready**: a sensor that waits (rescheduling itself, holding no worker slot) until
   `feature_pipeline` has processed the data interval; it gives up after 12 hours.
2. **score**: loads the version the alias `champion` points to and scores the flights with that
   version's feature service. The scheduled run of the latest hour reads the online store, and
   checks every flight's features against the offline store's point-in-time join: a difference
   (training-serving skew) fails the task after the predictions are kept. A re-run, a catch-up or
   a longer manual interval reads the offline store, which holds the same values as of each
   prediction time. Replaces the interval's partition of the predictions log (flight, prediction
   time, features used, probability, model version and run, where the features came from, when
   it was written): re-running an hour replaces its predictions, never duplicates them. Updates
   the `flight_delay_predictions` asset. Skips, saying so, while no model is champion yet.

A manual run may set `interval_start` and `interval_end` to score days at once; without them it
scores the last whole hour before the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, dag, task

from mlops_airflow.assets import PREDICTIONS
from mlops_airflow.context import interval_params

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "inference"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
    params=interval_params(),
)
def batch_inference():
    @task.sensor(poke_interval=timedelta(minutes=1), timeout=timedelta(hours=12), mode="reschedule")
    def features_ready(**context: Context) -> PokeReturnValue:
        import logging

        from include.flights import pipeline
        from include.mlops.settings import Settings
        from mlops_airflow.context import data_interval

        missing = pipeline.days_without_features_to_predict(Settings.from_env(), data_interval(context))
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
