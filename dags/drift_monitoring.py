"""
# Drift monitoring

Daily, once a day's predictions are in: runs when `batch_inference` has scored all 24 hours of a
UTC day (the day's partition of `flight_delay_predictions`), and checks the window that ends with
that day. Watches what the champion sees in production, asks for a retrain when the world moved,
and calls a person when retraining did not help. A day with an hour that was never scored is not
checked until that hour's run succeeds (clear it) or a person triggers the check; the deadline
alert of `batch_inference` tells people when an hour is late.

1. **champion_serving**: skips the check while there is no champion to monitor.
2. **check** (`DriftCheckOperator`): the last `window_days` of the predictions log against a
   reference the champion has seen in production (by default the 28 days before the window):
   data-quality checks of every input (a feed gone silent, a stuck sensor, a unit change, new or
   vanished categories, a shifted category mix), Evidently's drift of every input against its
   own calibrated threshold, weighed by the champion's permutation importance, and the realised
   ROC AUC of the flights whose labels landed against the champion's first production week, with
   a bootstrap interval. The rules of `include/flights/drift_rules.yaml` and the calibration of
   `include/flights/drift_calibration.yaml` (or the `rules` param) decide: incident (broken data:
   a person is called, nothing is retrained), retrain (drift, a loss of quality, or a refresh:
   two weeks without a fresher candidate, which is usually better),
   no drift, hold (a training run is queued or running, or the week's cooldown after the last
   retrain is not over) or skip (neither drift nor quality can be judged). Columns that could not
   be judged are named in the reasons and the trigger conf. Recorded as a run of the MLflow
   experiment `drift_monitoring`; the task's extra links open the Evidently report and run.
3. **retrain_needed** → **trigger_training** → **record_retrain**: only on `retrain` (otherwise
   they are skipped, which is not a failure). Triggers `training_pipeline` with the conf
   `{reason, report_url, drifted_features, not_judged}`, due at the check's own time (so a check
   run late or cleared for an earlier day retrains as of then), and notes the triggered
   run on the check's MLflow run, which is how the next checks know a retrain is under way.
4. **escalation_needed** → **escalate**: on the first check of a data-quality incident, or when the
   drift or quality condition persists after two retrains in a row did not help (their candidates
   rejected by the gate, or promoted with the condition still there three checks later), triggers
   a run of `drift_escalation` (`escalation__<run id>`), which asks a person what to do (roll back,
   retrain with another window or family, mute, acknowledge) and does it, while the daily checks go
   on. The conf says its kind and what was seen since when. Skipped otherwise; each condition
   escalates once, and a kind a person muted does not escalate until the mute ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Param, PartitionedAssetTimetable, dag, task

from mlops_airflow.assets import EACH_DAY, PREDICTIONS
from mlops_airflow.operators import DriftCheckOperator
from mlops_airflow.triggering import TriggerAsOfOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    schedule=PartitionedAssetTimetable(assets=PREDICTIONS, default_partition_mapper=EACH_DAY),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    tags=["mlops", "monitoring", "evidently"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "window_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=60,
            title="Window (days)",
            description="Days of the predictions log compared with the champion's training data.",
        ),
        "rules": Param(
            None,
            type=["null", "object"],
            title="Drift rules",
            description="Sections 'report', 'policy' and 'calibration' replacing those of "
            "include/flights/drift_rules.yaml "
            "and drift_calibration.yaml. Empty: the files.",
        ),
    },
)
def drift_monitoring():
    @task
    def champion_serving() -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.flights import inference
        from mlops_airflow.hooks import MlflowHook

        try:
            inference.champion(MlflowHook().get_settings())
        except inference.NoChampionError as error:
            raise AirflowSkipException(str(error)) from None

    check = DriftCheckOperator(
        task_id="check", inlets=[PREDICTIONS], window_days="{{ params.window_days }}", rules="{{ params.rules }}"
    )

    @task.short_circuit
    def retrain_needed(check: dict) -> dict | None:
        """The conf of the retrain (falsy, so skipping the trigger, when the check asked none)."""
        from include.mlops.records import DriftCheck

        recorded = DriftCheck.from_dict(check)
        return recorded.retrain_conf() if recorded.action == "retrain" else None

    trigger_training = TriggerAsOfOperator(
        task_id="trigger_training",
        trigger_dag_id="training_pipeline",
        trigger_run_id="drift__{{ run_id }}",
        run_after="{{ dag_run.run_after }}",  # the check's day: a backfilled check retrains as of then
        conf=retrain_needed(check.output),
        skip_when_already_exists=True,  # a retry or rerun never asks twice
    )

    @task
    def record_retrain(check: dict, **context: Context) -> str:
        from include.flights import monitoring
        from include.mlops.records import DriftCheck
        from mlops_airflow.hooks import MlflowHook

        training_run_id = f"drift__{context['run_id']}"
        monitoring.record_retrain(MlflowHook().get_settings(), DriftCheck.from_dict(check).run_id, training_run_id)
        return training_run_id

    @task.short_circuit
    def escalation_needed(check: dict) -> dict | None:
        """The conf of `drift_escalation` (falsy, so skipping the trigger, when there is none)."""
        from include.mlops.records import DriftCheck

        return DriftCheck.from_dict(check).escalation_conf()

    TriggerAsOfOperator(
        task_id="escalate",
        trigger_dag_id="drift_escalation",
        trigger_run_id="escalation__{{ run_id }}",
        run_after="{{ dag_run.run_after }}",
        conf=escalation_needed(check.output),
        skip_when_already_exists=True,  # a retry or rerun never asks twice
    )

    champion_serving() >> check
    trigger_training >> record_retrain(check.output)


dag = drift_monitoring()

if __name__ == "__main__":
    dag.test()
