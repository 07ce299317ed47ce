"""Triggering another DAG as of the triggering run's time. Apart from `operators`, so that the
DAGs and tasks that do not trigger anything do not import the standard provider's operator."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class TriggerAsOfOperator(TriggerDagRunOperator):
    """`TriggerDagRunOperator` whose `run_after` is templated, for a run due at the triggering
    run's time rather than the wall clock's (and without a logical date).

    A drift check asks for the retrain of its own day: run on schedule, `run_after` is a minute
    ago and nothing changes; backfilled or cleared for an earlier day, the training it triggers
    takes that day's window and the gate that day's evaluation week, instead of today's.
    """

    template_fields: Sequence[str] = (*TriggerDagRunOperator.template_fields, "run_after")
