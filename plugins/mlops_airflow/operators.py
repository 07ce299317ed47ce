"""Operators of the project, written like a provider's: templated fields, hooks made in `execute`,
decisions left to the library (`include/`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from mlops_airflow.links import GateReportLink, ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class PromotionGateOperator(BaseOperator):
    """Compare a candidate model version with the champion and record the decision.

    Both are scored on the same out-of-time evaluation set (the labelled flights of the
    `evaluation_days` whole UTC days before the run's time, through the feature store); the rule
    set decides (see `include.mlops.gate`). The decision is recorded as `gate/decision.json` and
    `gate/report.md` on the candidate's run, as tags on the model version, and returned (XCom)
    for the promotion task, which skips on a rejection. Nothing is promoted here.

    :param candidate_version: the version to judge (templated, e.g. from the register task's XCom).
    :param model_name: the registered model (templated); default: the settings' `MLOPS_MODEL_NAME`.
    :param rules: a rule set as a mapping, a YAML file path or YAML text (templated); default:
        `include/flights/promotion_rules.yaml`.
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

        from include.flights import gating
        from include.mlops.gate import RulesError
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
            rules = gating.load_rules(self.rules)
            at = run_day(context)
            result = gating.evaluate_candidate(settings, version, at, rules, self.evaluation_days, airflow_ids(context))
        except (RulesError, gating.GateError) as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot fix it
        ModelVersionLink().persist(context, result["model_version_url"])
        GateReportLink().persist(context, result["report_url"])
        self.log.info("Decision: %s; reasons: %s", result["outcome"], result["reasons"] or "every check passed")
        return result
