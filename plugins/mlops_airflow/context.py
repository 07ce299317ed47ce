"""Turn a task's Airflow context into the library's terms.

`data_interval` and `training_window` read only the parts of a context they name (`params`,
`dag_run`, ...), so the MLOps view computes a run's interval from the run alone, as its tasks do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context, Param

    from include.mlops.drift import TrainingRuns
    from include.mlops.lake import Interval
    from include.mlops.records import Answer


def data_interval(context: Mapping[str, Any]) -> Interval:
    """The run's data interval: the params `interval_start` and `interval_end` when a manual run
    sets them (days of history in one run, say); else the hour of the run's partition when Airflow
    made the run for one (`batch_inference` on an hour of `flight_features`); else Airflow's data
    interval; a manual run of an asset-scheduled DAG takes the hour that ends at its logical date,
    or without one the last whole hour before it was triggered, never the wall clock at execution."""
    from include.mlops.lake import Interval
    from mlops_airflow.assets import HOUR

    params = context.get("params") or {}
    chosen = params.get("interval_start"), params.get("interval_end")
    if any(chosen):
        if not all(chosen):
            raise ValueError("set both interval_start and interval_end, or neither")
        start, end = (_as_utc(datetime.fromisoformat(value)) for value in chosen)
        return Interval(start, end)
    if partition := context.get("partition_date"):
        return Interval(partition, partition + HOUR)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start < end:
        return Interval(start, end)
    # A manual run of an asset-scheduled DAG: its interval is the instant of its logical date, if any.
    end = (end or run_time(context)).replace(minute=0, second=0, microsecond=0)
    return Interval(end - HOUR, end)


def interval_params() -> dict[str, Param]:
    """The trigger form's optional interval, for the DAGs that process a data interval."""
    from airflow.sdk import Param

    from mlops_airflow.links import FEATURES_PAGE

    described = "UTC, on the hour. Empty: the run's own hour. Set both to process a longer interval in one run."
    return {
        "interval_start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Interval start",
            description_md=f"First instant of the data interval. {described} Which days have features, "
            f"and the backfills under way: [MLOps view › Features]({FEATURES_PAGE}).",
            section="Data interval",
        ),
        "interval_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Interval end (exclusive)",
            description=f"End of the data interval. {described}",
            section="Data interval",
        ),
    }


def _as_utc(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def airflow_ids(context: Context) -> dict[str, str]:
    """The Airflow identity of a task try, for MLflow tags and audit entries."""
    from include.mlops.records import airflow_ids

    ti = context["ti"]
    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return airflow_ids(ti.dag_id, ti.run_id, ti.try_number, user)


def answer_of(payload: dict | None) -> Answer | None:
    """A human-in-the-loop task's answer (its XCom), for audit entries and tags: the options chosen,
    who chose them and when. A timeout that took the task's default is answered by nobody. None
    when the task did not ask (it was skipped)."""
    from include.mlops.records import Answer

    if not payload:
        return None
    who = payload.get("responded_by_user")
    return Answer(
        answer=", ".join(payload["chosen_options"]),
        answered_by=who["name"] if who else "nobody: no answer within the timeout, the default applied",
        answered_at=str(payload["responded_at"]),
    )


def run_time(context: Context) -> datetime:
    """When the run was due: the end of its data interval when scheduled or backfilled, the moment
    of the trigger when manual. Labels known by then are the ones a run may use."""
    return context["dag_run"].run_after


def run_day(context: Context) -> datetime:
    """Midnight UTC where the run's whole-day windows (training, evaluation, a drift check's) end:
    the end of its partition's day when Airflow made the run for a partition (`drift_monitoring`
    once a day's predictions are in, however late that is), else midnight of the run's time."""
    if partition := context.get("partition_date"):
        return partition.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return run_time(context).replace(hour=0, minute=0, second=0, microsecond=0)


def training_window(context: Mapping[str, Any]) -> Interval:
    """The training window of a run: from its params, or the 8 weeks of whole UTC days before the
    run's time.

    The window may not end after the run's time (`run_time`): its labels could not have landed.
    """
    from datetime import UTC, datetime

    from include.mlops.lake import Interval

    params = context["params"]
    now = run_time(context)
    end = (
        datetime.fromisoformat(params["window_end"]).replace(tzinfo=UTC)
        if params.get("window_end")
        else run_day(context)
    )
    start = (
        datetime.fromisoformat(params["window_start"]).replace(tzinfo=UTC)
        if params.get("window_start")
        else end - timedelta(weeks=8)
    )
    if end > now:
        raise ValueError(f"training window end {end.date()} is after the run's time {now.isoformat()}")
    if start >= end:
        raise ValueError(f"training window start {start.date()} is not before its end {end.date()}")
    return Interval(start, end)


UNFINISHED = {None, "scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting"}


def runs_under_way(context: Context, dag_id: str, waiting_task_id: str) -> TrainingRuns:
    """The queued and running runs of `dag_id`, by run id: waiting when their `waiting_task_id` (a
    sensor) is rescheduled, having looked for its data and not found it; busy otherwise."""
    from include.mlops.drift import TrainingRuns

    ti = context["ti"]
    busy, waiting = [], []
    for run_id, tasks in sorted(ti.get_task_states(dag_id=dag_id).items()):
        if not UNFINISHED.intersection(tasks.values()):
            continue  # every task done: finished, whatever the run's state says
        if ti.get_dagrun_state(dag_id=dag_id, run_id=run_id) not in ("queued", "running"):
            continue  # marked done by a person, say
        (waiting if tasks.get(waiting_task_id) == "up_for_reschedule" else busy).append(run_id)
    return TrainingRuns(tuple(busy), tuple(waiting))
