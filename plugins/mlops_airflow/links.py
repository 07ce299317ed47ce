"""Operator extra links: buttons on a task instance that open what the task produced.

The task pushes each link's address to XCom under the link's key while it runs (the addresses
come from the settings, not hard-coded hosts); the Airflow UI reads them back from there.
Operators declare their links (`operator_extra_links`); a `@task` function declares them with
`task_with_links` (`mlops_airflow.decorators`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

# The MLOps view's section on features and long work under way, for trigger forms to link to.
FEATURES_PAGE = "/mlops/#features"


class _XComLink(BaseOperatorLink):
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""

    def persist(self, context: Context, url: str) -> None:
        context["ti"].xcom_push(key=self.xcom_key, value=url)


class ModelVersionLink(_XComLink):
    name = "MLflow model version"


class GateReportLink(_XComLink):
    name = "Gate report"


class DriftReportLink(_XComLink):
    name = "Evidently drift report"


class MonitoringRunLink(_XComLink):
    name = "MLflow monitoring run"


class MlflowRunLink(_XComLink):
    name = "MLflow run"


class AuditEntryLink(_XComLink):
    name = "Audit entry"
