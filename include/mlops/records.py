"""What the loop writes to MLflow and reads back, as typed records.

MLflow carries what one step leaves for another, for the MLOps view, and for a person reading it
months later. Each thing written is a frozen record here, with one way to write itself, one way to
read itself back and, where it crosses Airflow tasks or the view's API, one way to and from plain
data (`to_dict`, `from_dict`: what XCom and JSON carry). The names of the tags, parameters,
artifacts and experiments are this module's alone.

- `TrainingRun`: the tags of a training run and of each candidate's run (why, which window, who).
- `CandidateRun`: the params and artifacts of a candidate's run, read back by the gate (where its
  data ends, its threshold, its base rate), the drift check (importances, training sample) and the view.
- `Registration`: the tags of a model version: the Feast feature service that serves it (read by
  Feast's MLflow integration), its training run, since when it is the champion.
- `GateJudgement`: every judgement of a version as `gate/<n>/` on its run, the latest as the
  version's tags `gate.*`; read back by the promotion, the drift check and the view.
- `Answer`: how a person answered an approval (`approval.*` on the version) or an escalation
  (`drift.answer*` on the check's run); a mute is read back by the next checks.
- `AuditEntry`: one run of `registry_audit` per move of the champion, its params never rewritten.
- `DriftCheck`: one run of `drift_monitoring` per check (tags, metrics, `decision.json`, the
  reports); the next checks read their history from it, the view shows it.

A batch of predictions is not in MLflow: it is the predictions log of the lake, and `PredictionBatch`
is what the scoring task hands on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from include.mlops import drift
from include.mlops.gate import Judged
from include.mlops.lake import Interval

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

DRIFT_EXPERIMENT = "drift_monitoring"
AUDIT_EXPERIMENT = "registry_audit"
REPLAY_EXPERIMENT = "replay"

AIRFLOW = "airflow."  # the prefix of the Airflow ids a record carries: dag_id, run_id, try_number, triggered_by
ACTOR = "actor"  # who acted outside Airflow (the command line)
ERROR = "error"  # the tag that says why a run failed
CODE_VERSION = "mlflow.source.git.commit"  # MLflow's own tag of the code's version
PARENT = "mlflow.parentRunId"  # MLflow's own tag of a nested run's parent
TAG_LIMIT = 5000  # characters kept of a long tag value (MLflow refuses longer ones)
NONE = "none"  # how a missing version is written
SEARCH_PAGE = 1000


def training_experiment(model: str) -> str:
    """The experiment of the training runs of `model`."""
    return f"{model}_training"


class RecordError(LookupError):
    """A run or version lacks what its record must hold; the message names it."""


def search(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Run]:
    """Every run of the experiment that `filter_string` selects, oldest first, page by page."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string,
            order_by=["attributes.start_time ASC"],
            max_results=SEARCH_PAGE,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def tagged(key: str, value: str) -> str:
    """A search filter: runs whose tag `key` is `value`."""
    return f"tags.`{key}` = '{value}'"


def open_children(parent_run_id: str) -> str:
    """A search filter: the nested runs of `parent_run_id` still running."""
    return f"{tagged(PARENT, parent_run_id)} and attributes.status = 'RUNNING'"


def fail(client: MlflowClient, run_id: str, error: BaseException | str) -> None:
    """Mark a run FAILED with the error that ended it (its tag `error`)."""
    client.set_tag(run_id, ERROR, str(error)[:TAG_LIMIT])
    client.set_terminated(run_id, status="FAILED")


def context_of(values: Mapping[str, object]) -> dict[str, str]:
    """Who acted, among a record's tags or params: the Airflow ids (`airflow.*`) or the actor."""
    return {key: str(value) for key, value in values.items() if key.startswith(AIRFLOW) or key == ACTOR}


def airflow_ids(dag_id: str, run_id: str, try_number: int, triggered_by: str | None = None) -> dict[str, str]:
    """The Airflow ids of a task try, as the records carry them."""
    ids = {f"{AIRFLOW}dag_id": dag_id, f"{AIRFLOW}run_id": run_id, f"{AIRFLOW}try_number": str(try_number)}
    return ids | ({f"{AIRFLOW}triggered_by": triggered_by} if triggered_by else {})


def airflow_run_id(context: Mapping[str, str]) -> str | None:
    """The Airflow run among a record's context; None when it did not run in Airflow."""
    return context.get(f"{AIRFLOW}run_id")


class _MadeBy:
    """Who made a record, from its `context`: the Airflow DAG, run and user, when it ran in Airflow."""

    context: Mapping[str, str]

    @property
    def airflow_dag_id(self) -> str | None:
        return self.context.get(f"{AIRFLOW}dag_id")

    @property
    def airflow_run_id(self) -> str | None:
        return airflow_run_id(self.context)

    @property
    def triggered_by(self) -> str | None:
        return self.context.get(f"{AIRFLOW}triggered_by")


def _version(text: str | None) -> int | None:
    return None if text in (None, "", NONE) else int(text)


def _prefixed(tags: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The tags named `prefix...`, by the rest of their name."""
    return {key.removeprefix(prefix): value for key, value in tags.items() if key.startswith(prefix)}


def _listed(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.split(", ") if item)


@dataclass(frozen=True)
class TrainingRun:
    """Why a training ran and on which window: the tags of its run and of each candidate's run."""

    reason: str
    window_start: datetime
    window_end: datetime
    context: Mapping[str, str] = field(default_factory=dict)  # who ran it: Airflow's ids, or the actor
    code_version: str = ""
    drift_report: str = ""  # the drift check that asked for it, when one did
    drifted_features: tuple[str, ...] = ()
    not_judged: tuple[str, ...] = ()

    REASON: ClassVar[str] = "trigger_reason"
    UNKNOWN_AIRFLOW: ClassVar[dict[str, str]] = {f"{AIRFLOW}{key}": "-" for key in ("dag_id", "run_id", "try_number")}

    def tags(self) -> dict[str, str]:
        tags = {
            self.REASON: self.reason,
            "training_window.start": self.window_start.isoformat(),
            "training_window.end": self.window_end.isoformat(),
            **(dict(self.context) or self.UNKNOWN_AIRFLOW),
            **({CODE_VERSION: self.code_version} if self.code_version else {}),
        }
        optional = {
            "drift_report": self.drift_report,
            "drifted_features": ", ".join(self.drifted_features)[:TAG_LIMIT],
            "drift_not_judged": ", ".join(self.not_judged)[:TAG_LIMIT],
        }
        return tags | {key: value for key, value in optional.items() if value}

    @classmethod
    def reason_of(cls, run: Run) -> str:
        return run.data.tags.get(cls.REASON, "")


@dataclass(frozen=True)
class CandidateRun:
    """A candidate's training run as the steps after it read it: its configuration, the decision
    threshold it was evaluated at, its rows, where its data ends (the gate's rows start at
    `evaluation_start`) and the share of positives it was trained on (the gate's base rate)."""

    config: Mapping[str, object]  # the model family, its hyperparameters and seed
    threshold: float
    train_rows: int
    validation_rows: int
    validation_cutoff: datetime
    evaluation_start: datetime
    train_positive_rate: float

    FAMILY: ClassVar[str] = "family"
    IMPORTANCE: ClassVar[str] = "importance.json"  # permutation importance of each input
    REFERENCE: ClassVar[str] = "reference/training_features.json"  # a sample of the training features
    EVALUATION: ClassVar[str] = "evaluation.json"  # validation metrics, overall and by slice
    PLOT: ClassVar[str] = "plots/{name}.png"  # ROC and PR curves, calibration, confusion matrix, importance
    MODEL: ClassVar[str] = "model"  # the logged model (the pipeline, skops), which a version registers
    OWN: ClassVar[tuple[str, ...]] = (
        "threshold",
        "train_rows",
        "validation_rows",
        "validation_cutoff",
        "evaluation_start",
        "train_positive_rate",
    )

    @property
    def family(self) -> str:
        return str(self.config.get(self.FAMILY, ""))

    def write(self) -> None:
        """Log the record as the params of the active run."""
        import mlflow

        mlflow.log_params(
            dict(self.config)
            | {
                "threshold": self.threshold,
                "train_rows": self.train_rows,
                "validation_rows": self.validation_rows,
                "validation_cutoff": self.validation_cutoff.isoformat(),
                "evaluation_start": self.evaluation_start.isoformat(),
                "train_positive_rate": self.train_positive_rate,
            }
        )

    @classmethod
    def read(cls, run: Run) -> CandidateRun:
        params = run.data.params
        missing = [name for name in cls.OWN if name not in params]
        if missing:
            raise RecordError(f"run {run.info.run_id} is not a candidate's training run: it lacks {', '.join(missing)}")
        return cls(
            config={key: value for key, value in params.items() if key not in cls.OWN},
            threshold=float(params["threshold"]),
            train_rows=int(params["train_rows"]),
            validation_rows=int(params["validation_rows"]),
            validation_cutoff=datetime.fromisoformat(params["validation_cutoff"]),
            evaluation_start=datetime.fromisoformat(params["evaluation_start"]),
            train_positive_rate=float(params["train_positive_rate"]),
        )

    @classmethod
    def family_of(cls, run: Run) -> str:
        """The model family a run trained ("" for a run that is not a candidate's)."""
        return run.data.params.get(cls.FAMILY, "")

    @classmethod
    def log_details(
        cls,
        evaluation: Mapping[str, object],
        importance: Mapping[str, float],
        reference: pd.DataFrame,
        text_columns: list[str],
        figures: Mapping[str, Figure],
    ) -> None:
        """Log the validation metrics, the importances, the training-feature sample (its
        `text_columns` as text, missing values included: MLflow's tables keep one type a column)
        and the plots a person looks at (`plots/<name>.png`, each figure closed) to the active run."""
        import matplotlib.pyplot as plt
        import mlflow

        mlflow.log_dict(dict(evaluation), cls.EVALUATION)
        mlflow.log_dict(dict(importance), cls.IMPORTANCE)
        mlflow.log_table(reference.assign(**{c: reference[c].astype(str) for c in text_columns}), cls.REFERENCE)
        for name, figure in figures.items():
            mlflow.log_figure(figure, cls.PLOT.format(name=name))
            plt.close(figure)

    @classmethod
    def importance(cls, run_id: str) -> dict[str, float] | None:
        """The run's permutation importances; None if it has none."""
        import mlflow

        try:
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{cls.IMPORTANCE}")
        except Exception:  # MLflow raises a bare MlflowException (or OSError) when the artifact is missing
            return None

    @classmethod
    def reference(cls, run: Run, text_columns: list[str]) -> pd.DataFrame:
        """The run's training-feature sample, missing values of its `text_columns` missing again."""
        from mlflow import MlflowClient

        run_id = run.info.run_id
        try:
            sample = MlflowClient().load_table(run.info.experiment_id, cls.REFERENCE, run_ids=[run_id])
        except Exception as error:  # MLflow raises a bare MlflowException when the table is missing
            raise RecordError(f"the run {run_id} has no {cls.REFERENCE} ({error})") from None
        return sample.replace({c: {"None": None, "nan": None} for c in text_columns})


@dataclass(frozen=True)
class Registration:
    """A version's own tags: the Feast feature service that serves its features (the tag Feast's
    MLflow integration resolves), the training run it came from, and since when it is the champion."""

    model: str
    version: int
    feature_service: str = ""
    parent_run_id: str = ""
    champion_since: datetime | None = None

    FEATURE_SERVICE: ClassVar[str] = "feast.feature_service"
    PARENT_RUN: ClassVar[str] = "parent_run_id"
    CHAMPION_SINCE: ClassVar[str] = "champion_since"

    def write(self, client: MlflowClient, runs: tuple[str, ...] = ()) -> None:
        """Set the tags it holds on the version (and the feature service on the training `runs`)."""
        tags = {
            self.FEATURE_SERVICE: self.feature_service,
            self.PARENT_RUN: self.parent_run_id,
            self.CHAMPION_SINCE: self.champion_since.isoformat() if self.champion_since else "",
        }
        for key, value in tags.items():
            if value:
                client.set_model_version_tag(self.model, str(self.version), key, value)
        for run_id in runs:
            client.set_tag(run_id, self.FEATURE_SERVICE, self.feature_service)

    @classmethod
    def read(cls, version: ModelVersion) -> Registration:
        tags = version.tags
        since = tags.get(cls.CHAMPION_SINCE)
        return cls(
            model=version.name,
            version=int(version.version),
            feature_service=tags.get(cls.FEATURE_SERVICE, ""),
            parent_run_id=tags.get(cls.PARENT_RUN, ""),
            champion_since=datetime.fromisoformat(since) if since else None,
        )


@dataclass(frozen=True)
class GateJudgement(_MadeBy):
    """One judgement of a candidate version by the promotion gate.

    Every judgement is kept on the candidate's run (`gate/<n>/decision.json` and `report.md`); the
    version's tags `gate.*` describe the latest one, which is what `latest` reads back (without the
    report's text and the list of what was not checked, which are in the artifacts)."""

    model: str
    candidate_version: int
    champion_version: int | None
    outcome: Judged  # promote, first-model, reject, or error when no judgement could be made
    reasons: tuple[str, ...]
    decided_at: datetime  # the data's time: what had landed by then was judged
    judged_at: datetime  # when the judgement was made
    judgement: int = 0  # its number among the version's judgements, from 1
    evaluation_window: str = ""  # the key of the window's `Interval` ("" when no set could be built)
    evaluation_rows: int = 0
    not_checked: tuple[str, ...] = ()
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # "candidate", "champion" figures
    context: Mapping[str, str] = field(default_factory=dict)  # who ran it: Airflow's ids, or the actor
    candidate_run_id: str = ""
    model_version_url: str = ""
    report_url: str = ""
    report: str = ""  # the report as Markdown, for a person asked to approve
    seconds: Mapping[str, float] = field(default_factory=dict)  # time spent by step

    PREFIX: ClassVar[str] = "gate."
    PASSED: ClassVar[tuple[str, ...]] = ("promote", "first-model")
    ALL_PASSED: ClassVar[str] = "every check passed"

    @property
    def passed(self) -> bool:
        return self.outcome in self.PASSED

    @property
    def evaluation_days(self) -> str:
        """The evaluation window for people ("" when no set could be built)."""
        return Interval.from_key(self.evaluation_window).label if self.evaluation_window else ""

    @property
    def folder(self) -> str:
        return f"gate/{self.judgement:03d}"

    @property
    def report_path(self) -> str:
        return f"{self.folder}/report.md"

    @classmethod
    def judgements(cls, version: ModelVersion) -> int:
        """How many judgements of the version are recorded."""
        return int(version.tags.get(f"{cls.PREFIX}judgements", "0"))

    def write(self, client: MlflowClient, details: Mapping[str, object]) -> None:
        """Append the judgement to the candidate's run, with `details` (the rules, the decision's
        checks, the operational facts) beside it, and describe it in the version's tags."""
        record = self.to_dict() | dict(details)
        record.pop("report")
        client.log_text(
            self.candidate_run_id, json.dumps(record, indent=2, default=str), f"{self.folder}/decision.json"
        )
        client.log_text(self.candidate_run_id, self.report, self.report_path)
        latest = {
            "decision": self.outcome,
            "reasons": "; ".join(self.reasons)[:TAG_LIMIT] or self.ALL_PASSED,
            "champion_version": NONE if self.champion_version is None else str(self.champion_version),
            "evaluated_at": self.decided_at.isoformat(),
            "judged_at": self.judged_at.isoformat(),
            "evaluation_window": self.evaluation_window,
            "metrics": json.dumps(self.metrics),
            "report": self.report_path,
            "judgements": str(self.judgement),
            **self.context,
        }
        for key, value in latest.items():
            client.set_model_version_tag(self.model, str(self.candidate_version), f"{self.PREFIX}{key}", value)

    @classmethod
    def latest(cls, version: ModelVersion) -> GateJudgement | None:
        """The latest judgement of the version, from its tags; None when it was never judged."""
        tags = _prefixed(version.tags, cls.PREFIX)
        if "decision" not in tags:
            return None
        reasons = tags.get("reasons", "")
        return cls(
            model=version.name,
            candidate_version=int(version.version),
            champion_version=_version(tags.get("champion_version")),
            outcome=cast("Judged", tags["decision"]),
            reasons=() if reasons in ("", cls.ALL_PASSED) else tuple(reasons.split("; ")),
            decided_at=datetime.fromisoformat(tags["evaluated_at"]),
            judged_at=datetime.fromisoformat(tags["judged_at"]),
            judgement=int(tags.get("judgements", "0")),
            evaluation_window=tags.get("evaluation_window", ""),
            metrics=json.loads(tags.get("metrics", "{}")),
            context=context_of(tags),
            candidate_run_id=version.run_id or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"decided_at": self.decided_at.isoformat(), "judged_at": self.judged_at.isoformat()}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> GateJudgement:
        return cls(
            **value
            | {
                "reasons": tuple(value["reasons"]),
                "not_checked": tuple(value.get("not_checked", ())),
                "decided_at": datetime.fromisoformat(value["decided_at"]),
                "judged_at": datetime.fromisoformat(value["judged_at"]),
            }
        )


@dataclass(frozen=True)
class Answer:
    """How a person answered a question of the loop (an approval, an escalation): the options
    chosen, who chose them and when; a mute of an escalation also says until when."""

    answer: str
    answered_by: str
    answered_at: str
    muted_until: datetime | None = None

    def items(self) -> dict[str, str]:
        values = {"answer": self.answer, "answered_by": self.answered_by, "answered_at": self.answered_at}
        return values | ({"muted_until": self.muted_until.isoformat()} if self.muted_until else {})

    def audit_context(self, role: str) -> dict[str, str]:
        """The answer as Airflow ids of an audit entry: `airflow.<role>_answer`, ..."""
        return {f"{AIRFLOW}{role}_{key}": value for key, value in self.items().items()}

    def write_on_version(self, client: MlflowClient, model: str, version: int) -> None:
        """Note on a version how the person asked to approve its promotion answered (`approval.*`)."""
        for key, value in self.items().items():
            client.set_model_version_tag(model, str(version), f"approval.{key}", value)

    def write_on_check(self, client: MlflowClient, run_id: str) -> None:
        """Note on a drift check's run how the person answered its escalation (`drift.answer`, ...;
        the next checks read `muted_until` back)."""
        from mlflow.entities import RunTag

        tags = [RunTag(f"{DriftCheck.PREFIX}{key}", value) for key, value in self.items().items()]
        client.log_batch(run_id, tags=tags)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"muted_until": self.muted_until.isoformat() if self.muted_until else None}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Answer:
        muted = value.get("muted_until")
        return cls(**value | {"muted_until": datetime.fromisoformat(muted) if muted else None})


@dataclass(frozen=True)
class AuditEntry(_MadeBy):
    """One move of the champion alias (a promotion or a rollback): who asked, why, from and to
    which version, and whether it happened (FINISHED) or not (FAILED, with the error). Its params,
    which MLflow never lets be rewritten, are written before the alias is touched."""

    model: str
    action: str  # promote, rollback
    from_version: int | None
    to_version: int
    reason: str
    at: str
    status: str  # FINISHED: the alias moved; FAILED: it did not (see error)
    context: Mapping[str, str]  # the Airflow ids of the task that moved it, and any answer that allowed it
    error: str = ""
    entry_url: str = ""  # the audit entry in MLflow's UI

    def open(self, client: MlflowClient, experiment_id: str) -> str:
        """Write the entry as a new run of the audit experiment; return the run's id."""
        from mlflow.entities import Param

        name = f"{self.action} {self.model} {_named(self.from_version)} -> v{self.to_version}"
        run = client.create_run(experiment_id, run_name=name)
        params = {
            "model": self.model,
            "action": self.action,
            "from_version": NONE if self.from_version is None else str(self.from_version),
            "to_version": str(self.to_version),
            "reason": self.reason[:6000],
            "at": self.at,
            **self.context,
        }
        client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
        return run.info.run_id

    @classmethod
    def of_model(cls, model: str) -> str:
        """A search filter: the entries of `model`."""
        return f"params.model = '{model}'"

    @classmethod
    def read(cls, run: Run, entry_url: str = "") -> AuditEntry:
        params = run.data.params
        return cls(
            model=params["model"],
            action=params["action"],
            from_version=_version(params["from_version"]),
            to_version=int(params["to_version"]),
            reason=params["reason"],
            at=params["at"],
            status=run.info.status,
            context=context_of(params),
            error=run.data.tags.get(ERROR, ""),
            entry_url=entry_url,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return values | values.pop("context")


def _named(version: int | None) -> str:
    return "no champion" if version is None else f"version {version}"


@dataclass(frozen=True)
class DriftCheck(_MadeBy):
    """One drift check of the champion, as its run of the experiment `drift_monitoring` records it:
    what it decided and why, what it escalated, the retrain it triggered and how a person answered
    (tags), its figures (metrics), and its decision and reports (artifacts)."""

    model: str
    at: datetime  # the data's time of the check
    action: drift.Action  # incident, retrain, no_drift, hold, skip
    condition: bool  # drift or quality loss held, whether or not a retrain was asked
    champion_version: int
    window: str  # the key of the checked window's `Interval`
    reference: str  # the key of the reference window, or "training"
    drifted: tuple[str, ...] = ()
    incidents: tuple[str, ...] = ()  # data-quality findings: "column check"
    not_judged: tuple[str, ...] = ()  # columns drift could not judge
    reasons: tuple[str, ...] = ()  # what was seen and why it led to the action
    held_by: tuple[str, ...] = ()  # the training runs that held its retrain back
    escalation: str = ""
    escalation_kind: str = ""  # data_quality or retrain_did_not_help
    escalated: str = ""  # the key of the condition it escalated
    retrain_run_id: str = ""  # the training run it triggered
    answer: Answer | None = None  # how a person answered its escalation
    context: Mapping[str, str] = field(default_factory=dict)  # who ran it: Airflow's ids, or the actor
    code_version: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str = ""
    experiment_id: str = ""
    run_url: str = ""  # the run in MLflow's UI
    report_url: str = ""  # Evidently's drift report in MLflow's UI ("" when drift was not computed)

    PREFIX: ClassVar[str] = "drift."
    DECISION: ClassVar[str] = "decision.json"
    DRIFT_REPORT: ClassVar[str] = "drift/report.html"
    DRIFT_JSON: ClassVar[str] = "drift/report.json"
    QUALITY_REPORT: ClassVar[str] = "quality/report.html"
    QUALITY_JSON: ClassVar[str] = "quality/report.json"
    SCORE: ClassVar[str] = "drift_score."  # the metric prefix of each column's drift score

    @property
    def computed(self) -> bool:
        """Drift was computed (not when the window or the reference was too small)."""
        return any(name.startswith(self.SCORE) for name in self.metrics)

    @property
    def drift_share(self) -> float | None:
        return self.metrics.get("drift_share") if self.computed else None

    @property
    def realised_roc_auc(self) -> float | None:
        return self.metrics.get("realised_roc_auc")

    @property
    def baseline_roc_auc(self) -> float | None:
        return self.metrics.get("baseline_roc_auc")

    def tags(self) -> dict[str, str]:
        tags = {
            "model": self.model,
            "at": self.at.isoformat(),
            "action": self.action,
            "condition": "true" if self.condition else "false",
            "champion_version": str(self.champion_version),
            "window": self.window,
            "reference": self.reference,
            "drifted": ", ".join(self.drifted),
            "incidents": ", ".join(self.incidents),
            "not_judged": ", ".join(self.not_judged),
            "reasons": "; ".join(self.reasons),
            "held_by": ", ".join(self.held_by),
            "escalation": self.escalation,
            "escalation_kind": self.escalation_kind,
            "escalated": self.escalated,
        }
        code = {CODE_VERSION: self.code_version} if self.code_version else {}
        return {f"{self.PREFIX}{key}": value[:TAG_LIMIT] for key, value in tags.items()} | dict(self.context) | code

    def write(
        self, client: MlflowClient, experiment_id: str, details: Mapping[str, object], reports: Mapping[str, str]
    ) -> str:
        """Record the check as a new finished run: its tags, metrics, `decision.json` (`details`) and
        `reports` (artifact path -> text); return the run's id."""
        import time

        from mlflow.entities import Metric

        run = client.create_run(
            experiment_id,
            run_name=f"drift {self.model} v{self.champion_version} {self.at:%Y-%m-%d %H:%M}",
            tags=self.tags(),
        ).info.run_id
        stamp = int(time.time() * 1000)
        client.log_batch(run, metrics=[Metric(key, float(value), stamp, 0) for key, value in self.metrics.items()])
        client.log_text(run, json.dumps(dict(details), indent=2, default=str), self.DECISION)
        for path, text in reports.items():
            client.log_text(run, text, path)
        client.set_terminated(run, "FINISHED")
        return run

    @classmethod
    def of_model(cls, model: str) -> str:
        """A search filter: the checks of `model`."""
        return tagged(f"{cls.PREFIX}model", model)

    @classmethod
    def read(cls, run: Run) -> DriftCheck:
        tags = _prefixed(run.data.tags, cls.PREFIX)
        answer = None
        if tags.get("answer"):
            muted = tags.get("muted_until")
            answer = Answer(
                tags["answer"],
                tags.get("answered_by", ""),
                tags.get("answered_at", ""),
                datetime.fromisoformat(muted) if muted else None,
            )
        return cls(
            model=tags["model"],
            at=datetime.fromisoformat(tags["at"]),
            action=cast("drift.Action", tags.get("action", "skip")),
            condition=tags.get("condition") == "true",
            champion_version=int(tags.get("champion_version", 0)),
            window=tags.get("window", ""),
            reference=tags.get("reference", ""),
            drifted=_listed(tags.get("drifted", "")),
            incidents=_listed(tags.get("incidents", "")),
            not_judged=_listed(tags.get("not_judged", "")),
            reasons=tuple(tags["reasons"].split("; ")) if tags.get("reasons") else (),
            held_by=_listed(tags.get("held_by", "")),
            escalation=tags.get("escalation", ""),
            escalation_kind=tags.get("escalation_kind", ""),
            escalated=tags.get("escalated", ""),
            retrain_run_id=tags.get("retrain_run_id", ""),
            answer=answer,
            context=context_of(run.data.tags),
            metrics=dict(run.data.metrics),
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
        )

    @classmethod
    def record_retrain(cls, client: MlflowClient, run_id: str, training_run_id: str) -> None:
        """Note on a check's run that it triggered the training run `training_run_id` (Airflow's id)."""
        client.set_tag(run_id, f"{cls.PREFIX}retrain_run_id", training_run_id)

    def past(self) -> drift.PastCheck:
        """The check as the drift policy reads its history."""
        return drift.PastCheck(
            at=self.at,
            action=self.action,
            condition=self.condition,
            asked_retrain=bool(self.retrain_run_id),
            escalated=self.escalated,
            muted_until=self.answer.muted_until if self.answer else None,
        )

    def linked(self, run_url: Callable[..., str]) -> DriftCheck:
        """The check with its pages in MLflow's UI: the run, and Evidently's drift report when drift
        was computed (`run_url` is `Settings.run_url`)."""
        report = run_url(self.experiment_id, self.run_id, self.DRIFT_REPORT) if self.computed else ""
        return replace(self, run_url=run_url(self.experiment_id, self.run_id), report_url=report)

    def retrain_conf(self) -> dict[str, Any]:
        """The conf of the `training_pipeline` run a retrain asks for: why, Evidently's report, the
        drifted columns and those drift could not judge."""
        return {
            "reason": f"drift_monitoring {self.at:%Y-%m-%d}: {drift.condition_seen(self.reasons)}"[:500],
            "report_url": self.report_url,
            "drifted_features": list(self.drifted),
            "not_judged": sorted(self.not_judged),
        }

    def escalation_conf(self) -> dict[str, Any] | None:
        """The conf of the `drift_escalation` run that asks a person what to do; None when the check
        escalated nothing."""
        if not self.escalation:
            return None
        return {
            "model": self.model,
            "kind": self.escalation_kind,
            "message": self.escalation,
            "run_url": self.run_url,
            "report_url": self.report_url,
            "monitoring_run_id": self.run_id,
        }

    LISTED: ClassVar[tuple[str, ...]] = ("drifted", "incidents", "not_judged", "reasons", "held_by")
    DERIVED: ClassVar[tuple[str, ...]] = ("airflow_run_id", "drift_share", "realised_roc_auc", "baseline_roc_auc")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "at": self.at.isoformat(),
            "answer": self.answer.to_dict() if self.answer else None,
            **{name: list(getattr(self, name)) for name in self.LISTED},
            **{name: getattr(self, name) for name in self.DERIVED},
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> DriftCheck:
        fields = {key: item for key, item in value.items() if key not in cls.DERIVED}
        return cls(
            **fields
            | {key: tuple(fields.get(key, ())) for key in cls.LISTED}
            | {
                "at": datetime.fromisoformat(fields["at"]),
                "answer": Answer.from_dict(fields["answer"]) if fields.get("answer") else None,
            }
        )


@dataclass(frozen=True)
class ReplayRun:
    """One replay of the year, as its run of the experiment `replay` records it: its configuration
    (params, a mapping as JSON), each policy's figures (metrics named by `metric`) and the replay
    folder's report and log (artifacts, by their file names)."""

    start: str
    end: str
    config: Mapping[str, object]
    metrics: Mapping[str, float]
    files: tuple[Path, ...]
    code_version: str = ""

    @staticmethod
    def metric(policy: str, half: str, figure: str) -> str:
        """`<policy>.<half>.<figure>`: the loop's held-out ROC AUC is `loop.held_out.mean_roc_auc`."""
        return ".".join(part for part in (policy, half, figure) if part)

    def write(self, client: MlflowClient, experiment_id: str) -> str:
        """Record the replay as a new finished run; return its id."""
        import time

        from mlflow.entities import Metric, Param

        run = client.create_run(
            experiment_id,
            run_name=f"replay {self.start[:10]} to {self.end[:10]}",
            tags={CODE_VERSION: self.code_version} if self.code_version else {},
        ).info.run_id
        params = [
            Param(key, json.dumps(value) if isinstance(value, Mapping) else str(value))
            for key, value in self.config.items()
        ]
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, 0) for key, value in self.metrics.items()]
        client.log_batch(run, metrics=metrics, params=params)
        for path in self.files:
            client.log_artifact(run, str(path))
        client.set_terminated(run, "FINISHED")
        return run


@dataclass(frozen=True)
class PredictionBatch:
    """The predictions of one scored interval, as the scoring task hands them on: the log's
    partition they replaced (the lake's, not MLflow's), how many, by which version, served from
    which store."""

    interval: str  # the key of the scored `Interval`
    departing: str  # the key of the departures it covers (the partition of the log)
    rows: int
    served_from: str  # online or offline
    model: str
    model_version: int
    model_run_id: str
    path: str
    mean_probability: float | None
    seconds: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PredictionBatch:
        return cls(**value)
