"""Operators of the project, written like a provider's: templated fields, hooks made in `execute`,
decisions left to the library. They know no domain: the gate and the drift check are the domain's
that the settings name (`include.mlops.domain`; the flights model's by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from mlops_airflow.links import DriftReportLink, GateReportLink, ModelVersionLink, MonitoringRunLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class PromotionGateOperator(BaseOperator):
    """Compare a candidate model version with the champion and record the decision.

    The domain scores both on the same out-of-time evaluation set (for the flights model, the
    labelled flights of the `evaluation_days` whole UTC days before the run's time, never before
    the end of the candidate's validation data, through the feature store); the rule set decides
    (see `include.mlops.gate`). Each judgement is kept (`records.GateJudgement`) and returned
    (XCom, its `to_dict`) for the promotion task, which skips on a rejection. Nothing is promoted here.
    A judgement that cannot be made (malformed predictions, no evaluation data) is recorded with
    the decision `error` and fails the task without a retry: retrying cannot fix it.

    :param candidate_version: the version to judge (templated, e.g. from the register task's XCom).
    :param model_name: the registered model (templated); default: the settings' `MLOPS_MODEL_NAME`.
    :param rules: a rule set as a mapping, a YAML file path or YAML text (templated); default: the
        domain's (`include/flights/promotion_rules.yaml`).
    :param evaluation_days: days of labelled flights in the evaluation set.
    :param mlflow_conn_id: Airflow connection of the MLflow tracking server; without it, the
        environment's settings.
    """

    template_fields: Sequence[str] = ("model_name", "candidate_version", "rules")
    template_fields_renderers: ClassVar[dict[str, str]] = {"rules": "json"}
    operator_extra_links = (ModelVersionLink(), GateReportLink())
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        candidate_version: int | str,
        model_name: str | None = None,
        rules: str | Mapping[str, Any] | None = None,
        evaluation_days: int = 7,
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.candidate_version = candidate_version
        self.model_name = model_name
        self.rules = rules
        self.evaluation_days = evaluation_days
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.mlops.gate import GateError, RulesError
        from mlops_airflow.context import airflow_ids, run_day
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook(self.mlflow_conn_id).get_settings()
        if self.model_name:
            settings = replace(settings, model_name=self.model_name)
        try:
            version = int(self.candidate_version)
        except (TypeError, ValueError):
            raise AirflowFailException(
                f"candidate_version must be a version number, got {self.candidate_version!r}"
            ) from None
        try:
            judge = settings.model_domain.judge
            result = judge(settings, version, run_day(context), self.rules, self.evaluation_days, airflow_ids(context))
        except (RulesError, GateError) as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot fix it
        ModelVersionLink().persist(context, result.model_version_url)
        GateReportLink().persist(context, result.report_url)
        self.log.info("Decision: %s; reasons: %s", result.outcome, "; ".join(result.reasons) or "every check passed")
        return result.to_dict()


class DriftCheckOperator(BaseOperator):
    """Compare production's recent predictions with a reference; decide.

    The domain's check (for the flights model, `include.flights.monitoring`): data-quality checks,
    Evidently's drift of every monitored feature and of the prediction against the reference, and
    the realised quality of the predictions whose labels landed against the champion's first
    production week; the drift policy of `include.mlops.drift` decides whether a person must look
    at broken data, whether to ask for a retrain, and whether to escalate. The check is recorded
    as a `records.DriftCheck`, with the reports as HTML and JSON; the task's extra links open the
    Evidently report and the check's MLflow run. The record (`DriftCheck.to_dict`) is returned
    (XCom) for the tasks that trigger training and escalate. It skips when there is no
    champion to monitor.

    :param window_days: days of the predictions log before the run's time (templated).
    :param rules: the drift rules as a mapping, a YAML file path or YAML text (templated); default:
        the domain's (`include/flights/drift_rules.yaml`).
    :param training_dag_id: the DAG whose queued or running runs hold back a new retrain.
    :param waiting_task_id: that DAG's sensor of its data: a run whose sensor is rescheduled waits,
        perhaps for hours, and holds nothing back (the check names it in its reasons).
    :param mlflow_conn_id: Airflow connection of the MLflow tracking server.
    """

    template_fields: Sequence[str] = ("window_days", "rules")
    template_fields_renderers: ClassVar[dict[str, str]] = {"rules": "json"}
    operator_extra_links = (DriftReportLink(), MonitoringRunLink())
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        window_days: int | str = 7,
        rules: str | Mapping[str, Any] | None = None,
        training_dag_id: str = "training_pipeline",
        waiting_task_id: str = "features_ready",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_days = window_days
        self.rules = rules
        self.training_dag_id = training_dag_id
        self.waiting_task_id = waiting_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.mlops.drift import DriftRulesError
        from include.mlops.registry import NoChampionError
        from mlops_airflow import lineage
        from mlops_airflow.context import airflow_ids, run_day, runs_under_way
        from mlops_airflow.hooks import MlflowHook

        settings = MlflowHook(self.mlflow_conn_id).get_settings()
        lineage.lake(settings, reads=["predictions", "clean"])  # the log, and the labels that landed
        try:
            days = int(self.window_days)
        except (TypeError, ValueError):
            raise AirflowFailException(f"window_days must be a number of days, got {self.window_days!r}") from None
        training = runs_under_way(context, self.training_dag_id, self.waiting_task_id)
        try:
            check = settings.model_domain.check
            result = check(settings, run_day(context), days, self.rules or None, training, airflow_ids(context))
        except NoChampionError as error:
            raise AirflowSkipException(str(error)) from None
        except DriftRulesError as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot fix the rules
        if result.report_url:
            DriftReportLink().persist(context, result.report_url)
        MonitoringRunLink().persist(context, result.run_url)
        self.log.info("Decision: %s; %s", result.action, "; ".join(result.reasons))
        return result.to_dict()
