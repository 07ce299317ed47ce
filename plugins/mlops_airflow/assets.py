"""Assets that chain the project's DAGs: one DAG's output is another's schedule.

Both assets are partitioned by the hour they hold, keyed by the hour's start in UTC
(`2026-12-04T23:00:00`, Airflow's temporal mappers' default input format):

- `feature_pipeline` adds the hour's partition to `flight_features` when a run built one hour as it
  happened (see `hour_partition`); `batch_inference` runs once for each (`EACH_HOUR`) and predicts
  at that hour's end with its features;
- `batch_inference`'s run of an hour updates `flight_delay_predictions` with the same key (Airflow
  gives a partitioned run's events its key); `drift_monitoring` runs once all 24 hours of a UTC day
  are in (`EACH_DAY`), and checks the window that ends with that day.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Asset, DayWindow, RollupMapper, StartOfDayMapper, StartOfHourMapper, WaitForAll

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.mlops.lake import Interval

# An interval's features are in the offline store (state/lake/features) and pushed online.
FLIGHT_FEATURES = Asset(name="flight_features", group="features")

# The champion's predictions of an interval are in the predictions log (state/lake/predictions).
PREDICTIONS = Asset(name="flight_delay_predictions", group="predictions")

HOUR = timedelta(hours=1)
HOUR_KEY = "%Y-%m-%dT%H:%M:%S"

# One run per hour's partition, whose key it keeps (so its own events carry the same key).
EACH_HOUR = StartOfHourMapper(input_format=HOUR_KEY, output_format=HOUR_KEY)

# One run per UTC day, once the partitions of its 24 hours have all arrived.
EACH_DAY = RollupMapper(
    upstream_mapper=StartOfDayMapper(input_format=HOUR_KEY), window=DayWindow(), wait_policy=WaitForAll()
)


def hour_partition(context: Context, interval: Interval) -> str | None:
    """The partition of `flight_features` a run of `feature_pipeline` adds: the hour it built, when
    it built one hour as it happened, scheduled or triggered for its own hour. A run of a longer
    interval (the `interval_start`/`interval_end` params) or a backfill builds history: it adds
    none, so no predictions of the past follow from it (a manual run of `batch_inference` scores
    the past when a person wants that)."""
    if interval.end - interval.start != HOUR or context["dag_run"].run_type == "backfill":
        return None
    return interval.start.strftime(HOUR_KEY)
