"""The provider's operators against a second domain: they know no model of their own, take the gate
and the drift check from the domain the settings name (`MLOPS_DOMAIN`), and turn its answers and
errors into Airflow's (links, XCom, skip, fail without retry).

The domain here is a second one, defined in this module: it records what it is asked and answers
as told. The task instance is a stand-in with the calls the operators make (pushing a link,
reading other runs' states): `dag.test()` runs only DAGs of the DAGs folder, and these operators are
tested apart from any DAG. The flights domain's operators run for real in the DAG tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.mlops import records
from include.mlops.drift import DriftRulesError
from include.mlops.gate import GateError
from include.mlops.registry import NoChampionError
from mlops_airflow.operators import DriftCheckOperator, PromotionGateOperator

AT = datetime(2026, 11, 23, tzinfo=UTC)


@dataclass
class Recording:
    """A domain of its own: what the operators asked, and what to answer (or raise)."""

    model_name: str = "another_model"
    feature_repo: Path = Path("no_feature_repo")
    feature_step: timedelta = timedelta(days=1)
    asked: list[tuple[str, tuple]] = field(default_factory=list)
    error: Exception | None = None

    def judge(self, settings, version, at, rules, days, context) -> records.GateJudgement:
        self.asked.append(("judge", (settings.model_name, version, at, rules, days, dict(context))))
        if self.error:
            raise self.error
        return records.GateJudgement(
            settings.model_name, version, None, "first-model", (), at, at, 1,
            model_version_url=f"http://mlflow/{version}", report_url=f"http://mlflow/{version}/report",
        )  # fmt: skip

    def check(self, settings, at, days, rules, training, context) -> records.DriftCheck:
        self.asked.append(("check", (at, days, rules, training, dict(context))))
        if self.error:
            raise self.error
        return records.DriftCheck(
            model="another_model",
            at=at,
            action="no_drift",
            condition=False,
            champion_version=2,
            window="w",
            reference="r",
            reasons=("nothing drifted",),
            context=context,
            run_url="http://run",
        )


DOMAIN = Recording()


@pytest.fixture
def domain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recording:
    monkeypatch.setenv("MLOPS_DOMAIN", __name__)
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    DOMAIN.asked.clear()
    DOMAIN.error = None
    return DOMAIN


def context() -> dict[str, Any]:
    pushed: dict[str, str] = {}
    ti = SimpleNamespace(
        dag_id="some_dag",
        run_id="manual__1",
        try_number=1,
        pushed=pushed,
        xcom_push=lambda key, value: pushed.__setitem__(key, value),
        get_task_states=lambda dag_id: {},
        get_dagrun_state=lambda dag_id, run_id: "success",
    )
    return {"ti": ti, "dag_run": SimpleNamespace(run_after=AT + timedelta(hours=5))}


def test_the_gate_operator_asks_the_domain_and_hands_on_its_judgement(domain: Recording) -> None:
    ran = context()
    operator = PromotionGateOperator(task_id="gate", candidate_version="7", rules="values: []", evaluation_days=3)
    judged = operator.execute(ran)
    [(kind, (model, version, at, rules, days, ids))] = domain.asked
    assert (kind, model, version, at, rules, days) == ("judge", "another_model", 7, AT, "values: []", 3)
    assert ids["airflow.run_id"] == "manual__1"
    assert records.GateJudgement.from_dict(judged).outcome == "first-model"
    assert set(ran["ti"].pushed.values()) == {"http://mlflow/7", "http://mlflow/7/report"}


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [
        ("seven", None, "candidate_version must be a version number, got 'seven'"),
        ("7", GateError("too few evaluation rows"), "too few evaluation rows"),
    ],
)
def test_what_retrying_cannot_fix_fails_the_gate_for_good(
    domain: Recording, version: str, error: Exception | None, message: str
) -> None:
    domain.error = error
    with pytest.raises(AirflowFailException, match=message):
        PromotionGateOperator(task_id="gate", candidate_version=version).execute(context())


def test_the_drift_operator_asks_the_domain_and_hands_on_its_outcome(domain: Recording) -> None:
    ran = context()
    outcome = DriftCheckOperator(task_id="check", window_days="3").execute(ran)
    [(kind, (at, days, rules, training, _))] = domain.asked
    assert (kind, at, days, rules, training.busy) == ("check", AT, 3, None, ())
    assert records.DriftCheck.from_dict(outcome).reasons == ("nothing drifted",)  # the record, through XCom
    assert outcome["action"] == "no_drift" and list(ran["ti"].pushed.values()) == ["http://run"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [(NoChampionError("no champion yet"), AirflowSkipException), (DriftRulesError("bad rules"), AirflowFailException)],
)
def test_no_champion_skips_the_check_and_bad_rules_fail_it(
    domain: Recording, error: Exception, expected: type[Exception]
) -> None:
    domain.error = error
    with pytest.raises(expected, match=str(error)):
        DriftCheckOperator(task_id="check").execute(context())


def test_a_window_that_is_not_a_number_of_days_fails_the_check(domain: Recording) -> None:
    with pytest.raises(AirflowFailException, match="window_days must be a number of days, got 'a week'"):
        DriftCheckOperator(task_id="check", window_days="a week").execute(context())
    assert domain.asked == []
