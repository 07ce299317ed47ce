"""`task_with_links` rests on the standard provider's private `_PythonDecoratedOperator` (the one
private Airflow name of the provider): a task made with it is a Python task that offers the links."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from mlops_airflow.decorators import task_with_links
from mlops_airflow.links import AuditEntryLink, MlflowRunLink


def test_a_task_with_links_is_a_python_task_offering_them() -> None:
    @task_with_links(MlflowRunLink(), AuditEntryLink(), retries=3)
    def step(x: int) -> int:
        return x + 1

    with DAG("links", start_date=datetime(2026, 1, 1, tzinfo=UTC), schedule=None):
        made = step(1).operator
    assert [link.name for link in made.operator_extra_links] == [MlflowRunLink.name, AuditEntryLink.name]
    assert made.retries == 3 and made.python_callable(1) == 2
