"""
# Model rollback

Manual. Moves the `champion` alias of the registered model back to an earlier version, through
the same serialized, compare-and-set and audited path as a promotion (the one-slot `promotion`
pool, then `include.mlops.registry.move_champion`).

- **Target version**: empty means the previous champion (the alias `previous_champion`, which
  every move of `champion` keeps). The version must exist and differ from the current champion.
- **Reason**: required; it goes to the audit trail (the MLflow experiment `registry_audit`) with
  who triggered the run and when.

After the move, `previous_champion` points at the version that was rolled back from, so a second
rollback undoes the first. The task's extra link opens the audit entry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Param, dag

from mlops_airflow.decorators import task_with_links
from mlops_airflow.links import AuditEntryLink
from mlops_airflow.pools import PROMOTION_POOL

if TYPE_CHECKING:
    from airflow.sdk import Context


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["mlops", "registry", "mlflow"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
    params={
        "target_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Version to restore",
            description="A version number of the registered model, other than the champion. "
            "Empty: the previous champion, as the MLOps view shows it.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            maxLength=500,
            title="Why roll back",
            description="Required (3 to 500 characters): recorded in the audit trail with who triggered the run.",
            examples=["the new champion's realised ROC AUC fell", "a broken upstream feed reached production"],
        ),
    },
)
def model_rollback():
    @task_with_links(AuditEntryLink(), pool=PROMOTION_POOL)
    def rollback(**context: Context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from include.mlops import registry
        from mlops_airflow.context import airflow_ids
        from mlops_airflow.hooks import MlflowHook

        params = context["params"]
        settings = MlflowHook().get_settings()
        try:
            move = registry.rollback(
                settings, settings.model_name, params["target_version"], params["reason"], airflow_ids(context)
            )
        except (ValueError, registry.ChampionChangedError) as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot change the answer
        AuditEntryLink().persist(context, move.entry_url)
        return move.to_dict()

    rollback()


dag = model_rollback()

if __name__ == "__main__":
    dag.test()
