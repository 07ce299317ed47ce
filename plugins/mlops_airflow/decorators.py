"""`@task` with extra links: a Python task whose instances show buttons in the Airflow UI.

Airflow's `@task` has no way to declare operator extra links, and a plugin's global links would
show on every task of every DAG. `task_with_links` makes the task from an operator class that
declares them; the task sets their addresses with `link.persist(context, url)`.

This module is the provider's one use of a private Airflow name: the standard provider publishes
no base class for decorated Python tasks but `_PythonDecoratedOperator`. tests/plugins/test_decorators.py
fails when an upgrade moves or changes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory

if TYPE_CHECKING:
    from airflow.sdk import BaseOperatorLink
    from airflow.sdk.bases.decorator import TaskDecorator


def task_with_links(*links: BaseOperatorLink, **kwargs: Any) -> TaskDecorator:
    """Like `@task(**kwargs)`, and each instance offers `links`."""
    operator = type(
        "PythonOperatorWithLinks", (_PythonDecoratedOperator,), {"operator_extra_links": links, "__module__": __name__}
    )
    return task_decorator_factory(decorated_operator_class=operator, **kwargs)
