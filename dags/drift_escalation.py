"""
# Drift escalation

Triggered by `drift_monitoring` when it escalates (a data-quality incident, or a condition two
retrains did not fix), one run per escalation, so that a person may take their time while the
daily checks go on. The run's conf is the escalation: `model`, `kind`, `message`, `run_url` (the
check's MLflow run), `report_url` (its Evidently report) and `monitoring_run_id`.

1. **ask** (Airflow's human-in-the-loop `HITLOperator`): the person sees what was seen since when
   and the links, and is called by the alert channels (`AlertNotifier`: the alert log, and e-mail
   or Slack where configured). They answer in the UI's Required Actions or through the REST API:
   - **Roll back**: the champion goes back to the previous champion (the path of
     `model_rollback`: the `promotion` pool, compare-and-set, audited);
   - **Retrain**: a `training_pipeline` run with the window and the family given in the form
     (empty: that pipeline's defaults);
   - **Mute**: no escalation of this kind for the model for the form's number of days;
   - **Acknowledge**: nothing changes; the loop goes on escalating new conditions.

   No answer within 24 hours takes **Acknowledge**, which changes nothing, and says so on the
   alert channels.
2. **act**: writes the answer, who gave it and when on the check's MLflow run (`drift.answer`,
   `drift.answered_by`, `drift.answered_at`, and `drift.muted_until` for a mute, which the next
   checks read), then follows it: **roll_back**, or **retrain_conf** → **retrain**, or nothing.
   Airflow keeps its own record of the answer (the task's Required Action and the audit log).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, task

from include.flights.model import FAMILIES
from mlops_airflow.decorators import task_with_links
from mlops_airflow.links import AuditEntryLink
from mlops_airflow.notifiers import AlertNotifier
from mlops_airflow.pools import PROMOTION_POOL
from mlops_airflow.triggering import TriggerAsOfOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

ANSWERS = {"Roll back": "roll_back", "Retrain": "retrain_conf", "Mute": None, "Acknowledge": None}
DEFAULT_ANSWER = "Acknowledge"  # what no answer within the timeout means: nothing changes
ANSWER_TIMEOUT = timedelta(hours=24)
FORM = {  # what the person may fill in beside their answer
    "window_start": Param(None, type=["null", "string"], format="date", title="Retrain: window start"),
    "window_end": Param(None, type=["null", "string"], format="date", title="Retrain: window end (exclusive)"),
    "family": Param("hist_gradient_boosting", enum=list(FAMILIES), title="Retrain: model family"),
    "mute_days": Param(7, type="integer", minimum=1, maximum=90, title="Mute: for how many days"),
}
QUESTION = """\
{{ dag_run.conf['model'] }} ({{ dag_run.conf['kind'] | replace('_', ' ') }}): {{ dag_run.conf['message'] }}

- The check: {{ dag_run.conf['run_url'] }}
{% if dag_run.conf['report_url'] %}- Its drift report: {{ dag_run.conf['report_url'] }}
{% endif %}
**What now?** Roll back to the previous champion; Retrain with the window and family below (empty: \
the pipeline's defaults); Mute escalations of this kind for the days below; or Acknowledge, which \
changes nothing. No answer within 24 hours acknowledges."""


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlops", "monitoring", "escalation"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
)
def drift_escalation():
    ask = HITLOperator(
        task_id="ask",
        subject="[mlops] {{ dag_run.conf['model'] }}: {{ dag_run.conf['kind'] | replace('_', ' ') }}, what now?",
        body=QUESTION,
        options=list(ANSWERS),
        defaults=[DEFAULT_ANSWER],
        params=FORM,
        response_timeout=ANSWER_TIMEOUT,
        notifiers=[AlertNotifier()],
    )

    @task.branch
    def act(payload: dict, **context: Context) -> str | None:
        from dataclasses import replace

        from include.flights import monitoring
        from mlops_airflow.context import answer_of
        from mlops_airflow.hooks import MlflowHook

        escalation = context["dag_run"].conf
        answer = answer_of(payload)
        chosen = answer.answer
        if chosen == "Mute":
            at = datetime.fromisoformat(answer.answered_at)
            answer = replace(answer, muted_until=at + timedelta(days=_form(payload)["mute_days"]))
        monitoring.record_answer(MlflowHook().get_settings(), escalation["monitoring_run_id"], answer)
        if payload["responded_by_user"] is None:  # the timeout answered: the person hears what that meant
            AlertNotifier(
                subject=f"[mlops] {escalation['model']}: no answer to the escalation",
                message=f"No answer within {ANSWER_TIMEOUT}: {DEFAULT_ANSWER}, nothing changed. "
                f"The escalation: {escalation['message']} ({escalation['run_url']})",
            ).notify(context)
        return ANSWERS[chosen]

    @task_with_links(AuditEntryLink(), pool=PROMOTION_POOL)
    def roll_back(payload: dict, **context: Context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from include.mlops import registry
        from mlops_airflow.context import airflow_ids, answer_of
        from mlops_airflow.hooks import MlflowHook

        escalation = context["dag_run"].conf
        answer = answer_of(payload)
        settings = MlflowHook().get_settings()
        reason = f"escalation ({escalation['kind']}): rolled back by {answer.answered_by}"
        ids = airflow_ids(context) | answer.audit_context("escalation")
        try:
            move = registry.rollback(settings, settings.model_name, None, reason, ids)
        except (ValueError, registry.ChampionChangedError) as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot change the answer
        AuditEntryLink().persist(context, move.entry_url)
        return move.to_dict()

    @task
    def retrain_conf(payload: dict, **context: Context) -> dict:
        from mlops_airflow.context import answer_of

        escalation = context["dag_run"].conf
        chosen = _form(payload)
        reason = (
            f"escalation ({escalation['kind']}): retrain asked by {answer_of(payload).answered_by}; "
            f"{escalation['message']}"
        )
        conf = {"family": chosen["family"], "reason": reason[:500], "report_url": escalation.get("report_url")}
        return conf | {key: chosen[key] for key in ("window_start", "window_end") if chosen.get(key)}

    conf = retrain_conf(ask.output)
    TriggerAsOfOperator(
        task_id="retrain",
        trigger_dag_id="training_pipeline",
        trigger_run_id="escalation__{{ run_id }}",
        run_after="{{ dag_run.run_after }}",  # the escalating check's time: its window and gate
        conf=conf,
        skip_when_already_exists=True,  # a retry or rerun never asks twice
    )

    act(ask.output) >> [roll_back(ask.output), conf]


def _form(payload: dict) -> dict:
    """The form as answered: the person's values over the form's defaults (an answer may leave it empty)."""
    return {key: param.value for key, param in FORM.items()} | payload["params_input"]


dag = drift_escalation()

if __name__ == "__main__":
    dag.test()
