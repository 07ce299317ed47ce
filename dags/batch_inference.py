"""
# Batch inference

Runs on the hours of `flight_features`: when `feature_pipeline` has built an hour as it happened,
the champion predicts the flights whose prediction time is that hour's end: those departing 2 to 3
hours after it (the default lead is 2 hours; a flight is predicted on the last hour at or before
its departure minus the lead). One run per hour partition, keyed by the hour (the run's partition
key); the predictions log is what `drift_monitoring` watches.

**score**: loads the version the alias `champion` points to and scores the flights with that
version's feature service. The run of the latest hour reads the online store, and checks every
flight's features against the offline store's point-in-time join: a difference (training-serving
skew) fails the task after the predictions are kept. A re-run, a catch-up or a longer manual
interval reads the offline store, which holds the same values as of each prediction time. Replaces
the interval's partition of the predictions log (flight, prediction time, features used,
probability, model version and run, where the features came from, when it was written): re-running
an hour replaces its predictions, never duplicates them. Updates the `flight_delay_predictions`
asset with the hour's partition. Skips, saying so, while no model is champion yet.

**Deadline**: an hour's predictions are due 30 minutes after its features arrived (the run is
queued then); past that, the alert channels are told that the hour is late (its first flights
then leave in less than an hour and a half). A manual run is not an hour's promise: its deadline
passing is only logged.

A manual run may set `interval_start` and `interval_end` to score days at once; without them it
scores the hour that ends at its logical date, or without one the last whole hour before the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import DeadlineAlert, DeadlineReference, PartitionedAssetTimetable, SyncCallback, dag, task

from mlops_airflow.assets import EACH_HOUR, FLIGHT_FEATURES, PREDICTIONS
from mlops_airflow.context import interval_params
from mlops_airflow.notifiers import deadline_missed

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    schedule=PartitionedAssetTimetable(assets=FLIGHT_FEATURES, default_partition_mapper=EACH_HOUR),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    tags=["mlops", "inference"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
    params=interval_params(),
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=30),
        callback=SyncCallback(
            deadline_missed,
            kwargs={
                "subject": "[mlops] predictions late",
                "promise": "the hour's predictions are late for the flights they cover",
            },
        ),
    ),
)
def batch_inference():
    @task(inlets=[FLIGHT_FEATURES], outlets=[PREDICTIONS])
    def score(**context: Context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.flights import inference
        from mlops_airflow import lineage
        from mlops_airflow.context import data_interval
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook().get_settings()
        lineage.lake(settings, reads=["features"], writes=["predictions"])
        try:
            return inference.score(settings, data_interval(context)).to_dict()
        except inference.NoChampionError as error:
            raise AirflowSkipException(str(error)) from None

    score()


dag = batch_inference()

if __name__ == "__main__":
    dag.test()
