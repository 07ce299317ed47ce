"""Long work and what it has done, for the MLOps view: the stretches of time the features cover,
`feature_pipeline`'s multi-day runs and backfills under way (days done of days asked), and the
training runs waiting for features, with the days they wait for.

Read in the API server, from Airflow's database and the lake. The trigger forms link here rather
than say it themselves: a form shows the DAG as last parsed, and a description that changed with
every hour of features would make a new DAG version each hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.mlops.lake import Interval
    from include.mlops.settings import Settings

FEATURES_DAG, TRAINING_DAG, SENSOR = "feature_pipeline", "training_pipeline", "features_ready"
ACTIVE = ("queued", "running")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Work:
    """A run or backfill under way, measured in the days of features it asks for."""

    what: str  # "backfill", "run" (of feature_pipeline) or "waiting" (a training run)
    dag_id: str
    run_id: str  # "" for a backfill
    backfill_id: int | None
    interval: str  # the days it asks for, for people
    days_asked: int
    days_done: int  # of those, the days that have features
    first_missing: str  # the first day still without features, if any
    runs: str  # a backfill's runs: "done of asked"


@dataclass(frozen=True)
class Progress:
    spans: tuple[str, ...]  # the stretches the features cover, for people
    days: int  # whole UTC days with features
    building: tuple[Work, ...]
    waiting: tuple[Work, ...]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def progress(settings: Settings) -> Progress:
    from airflow.models import DagRun, TaskInstance
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from include.mlops.lake import Interval

    domain = settings.model_domain
    spans = domain.feature_spans(settings)

    def measured(
        what: str, dag_id: str, interval: Interval, run_id: str = "", backfill_id: int | None = None, runs: str = ""
    ) -> Work:
        missing = domain.missing_feature_days(settings, interval)
        asked = interval.days()
        return Work(
            what,
            dag_id,
            run_id,
            backfill_id,
            interval.label,
            len(asked),
            len(asked) - len(missing),
            missing[0].start.date().isoformat() if missing else "",
            runs,
        )

    building, waiting = [], []
    with create_session() as session:
        backfills = session.scalars(
            select(Backfill).where(Backfill.dag_id == FEATURES_DAG, Backfill.completed_at.is_(None))
        ).all()
        for backfill in backfills:
            states = dict(
                session.execute(
                    select(DagRun.state, func.count()).where(DagRun.backfill_id == backfill.id).group_by(DagRun.state)
                ).all()
            )
            done = sum(count for state, count in states.items() if state not in ACTIVE)
            interval = Interval(backfill.from_date, backfill.to_date)
            runs = f"{done} of {sum(states.values())}"
            building.append(measured("backfill", FEATURES_DAG, interval, backfill_id=backfill.id, runs=runs))
        feature_runs = session.scalars(
            select(DagRun).where(DagRun.dag_id == FEATURES_DAG, DagRun.state.in_(ACTIVE), DagRun.backfill_id.is_(None))
        ).all()
        for run in feature_runs:
            interval = _feature_interval(run)
            if interval.end - interval.start > domain.feature_step:  # more than one scheduled run: long work
                building.append(measured("run", FEATURES_DAG, interval, run.run_id))
        waiting_runs = session.scalars(
            select(DagRun)
            .join(TaskInstance, (TaskInstance.dag_id == DagRun.dag_id) & (TaskInstance.run_id == DagRun.run_id))
            .where(
                DagRun.dag_id == TRAINING_DAG,
                DagRun.state.in_(ACTIVE),
                TaskInstance.task_id == SENSOR,
                TaskInstance.state == "up_for_reschedule",
            )
        ).all()
        for run in waiting_runs:
            window = _training_window(run)
            if window is not None:
                waiting.append(measured("waiting", TRAINING_DAG, domain.feature_days(settings, window), run.run_id))
    return Progress(
        tuple(span.label for span in spans),
        sum(1 for span in spans for day in span.days() if day.end - day.start == DAY),
        tuple(building),
        tuple(waiting),
    )


def _feature_interval(run: Any) -> Interval:
    """A feature_pipeline run's interval, as its tasks compute it."""
    from mlops_airflow.context import data_interval

    context = {"params": run.conf or {}, "dag_run": run}
    context |= {"data_interval_start": run.data_interval_start, "data_interval_end": run.data_interval_end}
    return data_interval(context)


def _training_window(run: Any) -> Interval | None:
    """A training run's window, as its tasks compute it; None when it is invalid (its tasks fail)."""
    from mlops_airflow.context import training_window

    try:
        return training_window({"params": run.conf or {}, "dag_run": run})
    except ValueError:
        return None
