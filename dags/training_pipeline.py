"""
# Training pipeline

Weekly (Monday 03:00 UTC), on demand from the trigger form, or when `drift_monitoring` asks
(its reason, report link and drifted features arrive in the run's conf).

1. **features_ready**: a sensor that waits (rescheduling itself, so holding no worker slot, and
   looking again every minute) until `feature_pipeline` has built every day of the window, and
   gives up after 12 hours. A fresh install's first weekly run waits here for the history run.
2. **prepare**: opens the parent MLflow run, builds the point-in-time training set of the window
   (flights whose labels landed before the window's end) and splits it by time: the last 7 days
   are held out for the gate, the 3 days before them are validation, the rest is training. Bad
   data (an empty window, too few rows, one class only, features the store does not serve) fails
   here, before any training, and the MLflow run is
   marked FAILED with the reason. Its extra link opens that run.
3. **train**: one mapped task per searched configuration (dynamic task mapping), each a nested
   MLflow run with params, metrics overall and per origin and carrier, datasets, plots, a
   reference sample and the model (skops). Runs in the `training` pool and queue. Each task's
   extra link opens its run.
4. **register**: the best candidate on validation ROC AUC becomes a new version of the registered
   model, with its Feast feature service `<model>_v<version>`.
5. **gate** (`PromotionGateOperator`): the candidate and the champion are scored on the same
   out-of-time evaluation set (the last 7 labelled days, which the candidate's training and
   validation left out) and the rules of `include/flights/promotion_rules.yaml` decide; the
   judgement and its report are appended to the candidate's MLflow run and described on its model
   version. Malformed predictions or missing evaluation data fail it without a retry, recorded as
   the decision `error`. Its extra links open the version and the report.
6. **approval_needed** → **approve**: when approval is required (the form's "Approval before
   production", by default the deployment's `MLOPS_REQUIRE_APPROVAL`: off in the embedded default,
   on in the production stack's example) and the gate passed the candidate, a person is asked
   (Airflow's human-in-the-loop `HITLOperator`, answered in the UI's Required Actions or through
   the REST API) with the gate's report in front of them, and told by the alert channels
   (`AlertNotifier`). Approve or Reject; no answer within 24 hours rejects (the champion stays; clear
   `approve` to ask again). Airflow keeps who answered what and when; the promotion's audit entry
   carries it too. Skipped, asking nobody, otherwise.
7. **promote** (the one-slot `promotion` pool): moves `champion` to the candidate, compare-and-set
   and audited; skipped when the gate rejected the candidate or the person did not approve it, the
   skip saying why (a rejection is also written on the version: `approval.*` tags). After a wait,
   the compare-and-set still holds: if the champion changed meanwhile, the gate judges the
   candidate again against the new one before any move. Its extra link opens the audit entry.
8. **first_model_rejected** → **train_fallback**: when there is no champion yet and the gate
   rejected this run's candidate, a run of the logistic baseline on the same window is triggered
   (`first_model__<run id>`), so that a fresh install gets a first champion without a person in
   a week the gradient boosting fits badly (on the replay's 52 weekly windows of 2013, one: the
   week of 29 April, whose late share went from 27% to 42%; see `bench/first_model.py`). Skipped
   otherwise.
9. **close_run** (teardown): MLflow runs still open once training is over are marked FAILED: the
   parent, if anything after `prepare` failed for good (then nothing was registered), and the
   nested run of a `train` attempt that died with its worker or lost the tracking server (its
   retry trained again in a run of its own).

The window defaults to the 8 weeks of whole UTC days before the run's time: the end of its data
interval when scheduled, the moment of the trigger when manual. A window may not end after that
time (its labels could not have landed) and must start before it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import CronDataIntervalTimetable, Param, PokeReturnValue, dag, task

from include.flights.model import FAMILIES, ModelConfig
from mlops_airflow.assets import FLIGHT_FEATURES
from mlops_airflow.decorators import task_with_links
from mlops_airflow.links import FEATURES_PAGE, AuditEntryLink, MlflowRunLink
from mlops_airflow.notifiers import AlertNotifier
from mlops_airflow.operators import PromotionGateOperator
from mlops_airflow.pools import PROMOTION_POOL, TRAINING_POOL, TRAINING_QUEUE
from mlops_airflow.triggering import TriggerAsOfOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.mlops.lake import Interval

DEFAULT_MODEL = ModelConfig()  # the form's defaults are the model's own
FALLBACK_FAMILY = "logistic_regression"  # what a rejected first model falls back to
APPROVAL_TIMEOUT = timedelta(hours=24)  # then the default answer, Reject: nothing moves unapproved
APPROVAL_BODY = """\
{% set gated = ti.xcom_pull(task_ids='gate') %}\
The promotion gate passed version {{ gated['candidate_version'] }} of {{ gated['model'] }} \
({{ gated['outcome'] }}). Approve to make it the champion; Reject to keep the current one.

- Model version: {{ gated['model_version_url'] }}
- Gate report: {{ gated['report_url'] }}

{{ gated['report'] }}"""


def hyperparameter(name: str, title: str, description: str, **bounds: float) -> Param:
    """A field of the form's "Model" section: a hyperparameter of `ModelConfig`, its default the
    model's own, a number or an integer as that default is."""
    default = getattr(DEFAULT_MODEL, name)
    kind = "integer" if isinstance(default, int) else "number"
    return Param(default, type=kind, title=title, description=description, section="Model", **bounds)


@dag(
    schedule=CronDataIntervalTimetable("0 3 * * 1", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=3,  # a run waiting for features must not hold back a manual one; the pool bounds compute
    tags=["mlops", "training", "mlflow"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
    params={
        "window_start": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Window start (UTC day)",
            description_md="First departure day to train on. Empty: 8 weeks before the window end. "
            "Which days have features, and the backfills under way: "
            f"[MLOps view › Features]({FEATURES_PAGE}).",
            section="Training window",
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Window end (UTC day, exclusive)",
            description="The day after the last departure day. Empty: today (UTC) for a manual run. "
            "It may not be after the run's time, whose labels could not have landed.",
            section="Training window",
        ),
        "family": Param(
            "hist_gradient_boosting",
            enum=list(FAMILIES),
            values_display={
                "hist_gradient_boosting": "Gradient boosting (histogram)",
                "logistic_regression": "Logistic regression",
            },
            title="Model family",
            description="Both read the same features of the model's Feast feature service.",
            section="Model",
        ),
        "learning_rate": hyperparameter(
            "learning_rate",
            "Learning rate",
            "Gradient boosting only: the shrinkage of each tree (0.001 to 1).",
            minimum=0.001,
            maximum=1,
        ),
        "max_iter": hyperparameter(
            "max_iter",
            "Boosting iterations",
            "Gradient boosting only: the number of trees (10 to 2000).",
            minimum=10,
            maximum=2000,
        ),
        "max_leaf_nodes": hyperparameter(
            "max_leaf_nodes", "Leaves per tree", "Gradient boosting only: 2 to 255.", minimum=2, maximum=255
        ),
        "c": hyperparameter(
            "c",
            "C, inverse regularization",
            "Logistic regression only: larger is weaker regularization (above 0, up to 1000).",
            exclusiveMinimum=0,
            maximum=1000,
        ),
        "configurations": Param(
            1,
            type="integer",
            minimum=1,
            maximum=8,
            title="Configurations to search",
            description="1 trains the configuration above; more adds seeded variations of it, trained in "
            "parallel on the training queue. The best on validation ROC AUC is registered.",
            section="Search",
        ),
        "seed": Param(
            DEFAULT_MODEL.seed,
            type="integer",
            minimum=0,
            title="Random seed",
            description="The same seed, window and configuration train the same model.",
            section="Search",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            minLength=3,
            maxLength=500,
            title="Why this run",
            description="Recorded on the MLflow run and shown in the MLOps view (3 to 500 characters). "
            "Left empty: 'manual' for a run from this form, 'scheduled weekly retraining' for the schedule's.",
            examples=["new features in the feature store", "the champion underperforms on a carrier"],
            section="Why",
        ),
        "require_approval": Param(
            None,
            type=["null", "boolean"],
            title="Approval before production",
            description="A person approves the promotion the gate passed before the champion moves. Empty: the "
            "deployment's MLOPS_REQUIRE_APPROVAL (off in the embedded default, on in the production stack's example).",
            section="Promotion",
        ),
        "report_url": Param(
            None,
            type=["null", "string"],
            title="Drift report",
            description="Set by drift_monitoring when drift triggered the run: its Evidently report.",
            section="Set by drift monitoring",
        ),
        "drifted_features": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Drifted features",
            description="Set by drift_monitoring when drift triggered the run.",
            section="Set by drift monitoring",
        ),
        "not_judged": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Features drift could not judge",
            description="Set by drift_monitoring: inputs with no value in the window or the reference.",
            section="Set by drift monitoring",
        ),
    },
)
def training_pipeline():
    @task.sensor(poke_interval=timedelta(minutes=1), timeout=timedelta(hours=12), mode="reschedule")
    def features_ready(**context: Context) -> PokeReturnValue:
        import logging

        from include.flights import pipeline
        from mlops_airflow.hooks import MlflowHook

        window = _window(context)
        missing = pipeline.days_without_features(MlflowHook().get_settings(), window)
        if missing:
            logging.getLogger(__name__).info(
                "Waiting for feature_pipeline: %d of the window's days have no features yet (%s first)",
                len(missing),
                missing[0],
            )
        return PokeReturnValue(is_done=not missing)

    @task_with_links(MlflowRunLink(), inlets=[FLIGHT_FEATURES])
    def prepare(**context: Context) -> dict:
        from dataclasses import asdict, replace

        from airflow.sdk.exceptions import AirflowFailException

        from include.flights import training
        from include.mlops import tracking
        from mlops_airflow import lineage
        from mlops_airflow.context import airflow_ids
        from mlops_airflow.hooks import MlflowHook

        params = context["params"]
        settings = MlflowHook().get_settings()
        lineage.lake(settings, reads=["features", "clean"])  # the training set's features and labels
        window = _window(context)
        asked = replace(
            training.training_run(window, _reason(context), airflow_ids(context)),
            drift_report=params.get("report_url") or "",
            drifted_features=tuple(params.get("drifted_features") or ()),
            not_judged=tuple(params.get("not_judged") or ()),
        )
        tags = asked.tags()
        parent = tracking.start_run(settings, f"training {window.key}", tags)
        MlflowRunLink().persist(context, settings.run_url(tracking.connect(settings), parent))
        try:
            prepared = training.prepare(settings, window, parent)
        except training.TrainingDataError as error:
            tracking.fail_run(parent, error)
            raise AirflowFailException(str(error)) from None  # retrying cannot fix the data
        except Exception as error:
            tracking.fail_run(parent, error)
            raise
        return {"parent_run_id": parent, "tags": tags, "prepared": asdict(prepared)}

    @task
    def configurations(**context: Context) -> list[dict]:
        from dataclasses import asdict

        from include.flights import model

        p = context["params"]
        base = model.ModelConfig(
            family=p["family"],
            learning_rate=p["learning_rate"],
            max_iter=p["max_iter"],
            max_leaf_nodes=p["max_leaf_nodes"],
            c=p["c"],
            seed=p["seed"],
        )
        return [asdict(config) for config in model.search_space(base, p["configurations"])]

    @task_with_links(MlflowRunLink(), pool=TRAINING_POOL, queue=TRAINING_QUEUE)
    def train(run: dict, config: dict, **context: Context) -> dict:
        from include.flights import model, training
        from mlops_airflow.hooks import MlflowHook

        prepared = training.Prepared(**run["prepared"])
        trained = training.train_candidate(
            MlflowHook().get_settings(), prepared, model.ModelConfig(**config), run["parent_run_id"], run["tags"]
        )
        MlflowRunLink().persist(context, trained["run_url"])
        return trained

    @task
    def register(run: dict, candidates: list[dict]) -> dict:
        from include.flights import training
        from include.mlops import tracking
        from mlops_airflow.hooks import MlflowHook

        registered = training.register_best(MlflowHook().get_settings(), list(candidates), run["parent_run_id"])
        tracking.finish_run(run["parent_run_id"])
        return registered

    @task
    def close_run(run: dict) -> list[str]:
        """Teardown: mark FAILED the MLflow runs of this training left open by failed attempts."""
        from include.flights import training
        from mlops_airflow.hooks import MlflowHook

        return training.close(MlflowHook().get_settings(), run["parent_run_id"])

    @task.short_circuit(ignore_downstream_trigger_rules=False)  # skips `approve` alone: `promote` still runs
    def approval_needed(gated: dict, **context: Context) -> bool:
        from mlops_airflow.hooks import MlflowHook

        if gated["outcome"] == "reject":
            return False  # nothing to approve: `promote` skips, saying why
        asked = context["params"].get("require_approval")
        return MlflowHook().get_settings().require_approval if asked is None else asked

    approve = HITLOperator(
        task_id="approve",
        subject="Promote version {{ ti.xcom_pull(task_ids='gate')['candidate_version'] }} "
        "of {{ ti.xcom_pull(task_ids='gate')['model'] }} to production?",
        body=APPROVAL_BODY,
        options=["Approve", "Reject"],
        defaults=["Reject"],
        response_timeout=APPROVAL_TIMEOUT,
        notifiers=[AlertNotifier()],
    )

    @task_with_links(AuditEntryLink(), pool=PROMOTION_POOL, trigger_rule="none_failed")
    def promote(gated: dict, **context: Context) -> dict:
        from include.flights import gating
        from include.mlops.records import GateJudgement
        from mlops_airflow.context import airflow_ids, answer_of, run_day
        from mlops_airflow.hooks import MlflowHook

        judgement = GateJudgement.from_dict(gated)
        version = judgement.candidate_version
        if not judgement.passed:
            _skip(f"version {version} was rejected by the gate: {'; '.join(judgement.reasons)}")
        settings = MlflowHook().get_settings()
        answer = answer_of(context["ti"].xcom_pull(task_ids="approve"))  # None: nobody was asked
        if answer and answer.answer != "Approve":
            gating.record_approval(settings, judgement, answer)
            _skip(f"version {version} was not approved: {answer.answer}, by {answer.answered_by}")
        at = run_day(context)
        ids = airflow_ids(context) | (answer.audit_context("approval") if answer else {})
        result = gating.promote(settings, judgement, at, context=ids)
        if not result["promoted"]:
            reasons = "; ".join(result["gate"]["reasons"])
            _skip(f"{result['aborted']}; judged again, version {version} was rejected: {reasons}")
        AuditEntryLink().persist(context, result["move"]["entry_url"])
        return result

    @task.short_circuit
    def first_model_rejected(gated: dict, **context: Context) -> dict | None:
        """No champion yet, and the gate rejected this run's candidate: the conf of a run of the
        fallback family on the same window (falsy, so skipping the trigger, otherwise)."""
        family = context["params"]["family"]
        if gated["outcome"] != "reject" or gated["champion_version"] is not None or family == FALLBACK_FAMILY:
            return None
        window = _window(context)
        return {
            "family": FALLBACK_FAMILY,
            "window_start": window.start.date().isoformat(),
            "window_end": window.end.date().isoformat(),
            "reason": f"first model: {family} version {gated['candidate_version']} was rejected by the gate "
            f"({'; '.join(gated['reasons'])[:1000]}); the logistic baseline on the same window",
        }

    run = prepare()
    features_ready() >> run
    candidates = train.partial(run=run).expand(config=configurations())
    registered = register(run, candidates)
    registered >> close_run(run).as_teardown(setups=run)
    gate = PromotionGateOperator(task_id="gate", candidate_version="{{ ti.xcom_pull(task_ids='register')['version'] }}")
    registered >> gate
    approval_needed(gate.output) >> approve >> promote(gate.output)
    TriggerAsOfOperator(
        task_id="train_fallback",
        trigger_dag_id="training_pipeline",
        trigger_run_id="first_model__{{ run_id }}",
        run_after="{{ dag_run.run_after }}",  # the same window stays valid for it
        conf=first_model_rejected(gate.output),
        skip_when_already_exists=True,  # a retry or rerun never asks twice
    )


def _window(context: Context) -> Interval:
    """The run's training window; an invalid one fails the task for good (retrying cannot fix it)."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.context import training_window

    try:
        return training_window(context)
    except ValueError as error:
        raise AirflowFailException(str(error)) from None


def _skip(why: str) -> NoReturn:
    """Skip the task, saying why in the body of its log, where the UI shows it first (the message of
    the skip itself lands in the log's collapsed "Post Execute" group)."""
    import logging

    from airflow.sdk.exceptions import AirflowSkipException

    logging.getLogger(__name__).warning("Not promoted: %s", why)
    raise AirflowSkipException(why)


def _reason(context: Context) -> str:
    """Why the run trains: the reason it was given (the form's, or drift_monitoring's), else what
    started it: the weekly schedule, or a person ("manual")."""
    given = context["params"].get("reason")
    if given:
        return given
    run_type = context["dag_run"].run_type
    run_type = getattr(run_type, "value", run_type)
    return "scheduled weekly retraining" if run_type == "scheduled" else run_type


dag = training_pipeline()

if __name__ == "__main__":
    dag.test()
