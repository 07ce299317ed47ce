"""Training steps of the flights model; the training DAG's tasks and the CLI call these.

A training run is one parent MLflow run with one nested run per searched configuration:

1. `prepare`: the point-in-time training set of the window's flights whose labels landed
   before the window's end, checked (not empty, enough rows, both classes, every feature
   served), then split by time (`split`): the last `evaluation_days` of the window are held out
   for the promotion gate, the `validation_days` before them are validation, and training keeps
   the flights before those whose labels were known before validation starts.
2. `train_candidate`: fit one configuration, evaluate it on validation, log everything, the
   features' permutation importance among it (`importance.json`: what drift monitoring weighs
   drifted features by).
3. `register_best`: the best candidate on validation ROC AUC becomes a model version, with
   its Feast feature service `<model>_v<version>`.

What each run records is `include.mlops.records`' `TrainingRun` (tags) and `CandidateRun` (params
and artifacts).
4. `close`: whatever is still open once training is over failed: the parent, when a step after
   `prepare` failed for good, and the nested run of any attempt that died with its task (its
   worker killed, or the tracking server gone before the run could be marked).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from include.flights import model, pipeline
from include.mlops import records, tracking
from include.mlops.evaluation import Classifier, Evaluation, evaluate
from include.mlops.feature_store import load_store
from include.mlops.lake import Interval
from include.mlops.settings import Settings
from include.mlops.validation import DataValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.3  # about 1.5x the base rate of late flights: catches most of them
REFERENCE_ROWS = 5000
IMPORTANCE_ROWS = 2000  # enough to rank the inputs; each one costs two predictions of these rows
# Calibrated on January-June 2013 (docs/replay): each day of training data left out makes the model
# staler, and weekly models trained up to 3 days before the gate's week scored better the week after
# than with 5 or 10 days of validation. The gate's week is held out so that no row that fitted or
# chose a candidate judges it.
VALIDATION_DAYS = 3
EVALUATION_DAYS = 7


class TrainingDataError(ValueError):
    """The training data cannot give a trustworthy model; the message says why."""


@dataclass(frozen=True)
class Prepared:
    """A training set split by time, kept as Parquet files for the training tasks."""

    window: str
    cutoff: str  # where validation starts
    evaluation_start: str  # where validation ends: the gate's rows start here
    train_path: str
    validation_path: str
    train_rows: int
    validation_rows: int
    features: list[str]


def prepare(
    settings: Settings,
    window: Interval,
    run_id: str,
    min_rows: int = 1000,
) -> Prepared:
    """Build, check and split the training set of `window`; fail before training if it is unfit."""
    missing_days = pipeline.days_without_features(settings, window)
    if missing_days:
        raise TrainingDataError(
            f"features missing for {len(missing_days)} of the window's days ({missing_days[0]} first): "
            "run feature_pipeline for them (an Airflow backfill) before training"
        )
    try:
        labelled = pipeline.training_set(settings, window)
    except DataValidationError as error:
        raise TrainingDataError(f"no training data for {window}: {error}") from None
    parts = split(labelled, window, min_rows=min_rows)
    folder = settings.state_dir / "training" / run_id
    return Prepared(
        window=window.key,
        cutoff=parts.cutoff.isoformat(),
        evaluation_start=parts.evaluation_start.isoformat(),
        train_path=tracking.save_frame(parts.train, folder / "train.parquet"),
        validation_path=tracking.save_frame(parts.validation, folder / "validation.parquet"),
        train_rows=len(parts.train),
        validation_rows=len(parts.validation),
        features=parts.features,
    )


@dataclass(frozen=True)
class Split:
    """A window's labelled flights split by time: training, then validation from `cutoff`; from
    `evaluation_start` to the window's end the rows are left to the promotion gate."""

    train: pd.DataFrame
    validation: pd.DataFrame
    cutoff: datetime
    evaluation_start: datetime
    features: list[str]  # the model's input columns


def split(
    labelled: pd.DataFrame,
    window: Interval,
    validation_days: float = VALIDATION_DAYS,
    evaluation_days: float = EVALUATION_DAYS,
    min_rows: int = 1000,
) -> Split:
    """Check the window's labelled flights and split them by time. Validation keeps the labels known
    before the gate's rows start, training those known before validation starts. Raises
    `TrainingDataError` when the data cannot give a model."""
    from datetime import timedelta

    if labelled.empty:
        raise TrainingDataError(f"empty window: no flight in {window} has a landed label")
    evaluation_start = window.end - timedelta(days=evaluation_days)
    cutoff = evaluation_start - timedelta(days=validation_days)
    if cutoff <= window.start:
        raise TrainingDataError(
            f"the window {window} is too short: {validation_days:g} days of validation and {evaluation_days:g} days "
            "held out for the promotion gate leave no day to train on"
        )
    features = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
    missing = [c for c in features if c not in labelled.columns or labelled[c].isna().all()]
    if missing:
        raise TrainingDataError(f"features missing from the feature service for {window}: {', '.join(missing)}")

    labelled = labelled.copy()
    labelled[features] = model.model_input(labelled, features)
    departs, known = labelled["sched_dep_at"], labelled["label_at"]
    validation = labelled[(departs >= cutoff) & (departs < evaluation_start) & (known < evaluation_start)]
    train = labelled[(departs < cutoff) & (known < cutoff)]
    for name, part in (("training", train), ("validation", validation)):
        if len(part) < min_rows:
            raise TrainingDataError(f"too few rows: {len(part)} {name} rows in {window}, at least {min_rows} needed")
        classes = part[model.LABEL].nunique()
        if classes < 2:
            raise TrainingDataError(f"single-class labels: every {name} flight in {window} has the same label")
    return Split(train, validation, cutoff, evaluation_start, features)


@dataclass(frozen=True)
class Fitted:
    """A fitted candidate and how it did on its validation split."""

    pipe: Classifier  # the scikit-learn Pipeline
    evaluation: Evaluation
    probabilities: np.ndarray  # on the validation rows
    fit_seconds: float


def fit(
    config: model.ModelConfig,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> Fitted:
    """Fit one configuration on `train` and evaluate it on `validation`, overall and per slice."""
    numeric = [c for c in features if c not in model.CATEGORICAL]
    started = time.perf_counter()
    pipe = model.build_pipeline(config, numeric).fit(train[features], train[model.LABEL])
    fit_seconds = time.perf_counter() - started
    p = pipe.predict_proba(validation[features])[:, 1]
    evaluation = evaluate(validation[model.LABEL].to_numpy(), p, threshold, {s: validation[s] for s in model.SLICES})
    return Fitted(pipe, evaluation, p, fit_seconds)


def reference_sample(train: pd.DataFrame, features: list[str], seed: int) -> pd.DataFrame:
    """The training-feature sample kept with a model: drift monitoring's reference when its rules
    ask for the training data."""
    return train.sample(min(REFERENCE_ROWS, len(train)), random_state=seed)[features]


def importance(pipe: object, validation: pd.DataFrame, features: list[str], seed: int) -> dict[str, float]:
    """Each input's permutation importance on validation: how much ROC AUC drops when its values
    are shuffled (a sample of `IMPORTANCE_ROWS`, two repeats, seeded)."""
    from sklearn.inspection import permutation_importance

    sample = validation.sample(min(IMPORTANCE_ROWS, len(validation)), random_state=seed)
    found = permutation_importance(
        pipe, sample[features], sample[model.LABEL], scoring="roc_auc", n_repeats=2, random_state=seed
    )
    return {name: float(value) for name, value in zip(features, found.importances_mean, strict=True)}


class Trained(TypedDict):
    """A trained candidate, as the training task hands it to registration."""

    run_id: str
    run_url: str
    config: dict[str, object]
    metrics: dict[str, float]  # on validation
    model_uri: str


def train_candidate(
    settings: Settings,
    prepared: Prepared,
    config: model.ModelConfig,
    parent_run_id: str,
    tags: dict[str, str],
    threshold: float = DEFAULT_THRESHOLD,
) -> Trained:
    """Fit and evaluate one configuration in a nested MLflow run; return its run id and metrics."""
    import mlflow
    import pandas as pd

    run_id = tracking.start_run(settings, f"{config.family}", tags, parent_run_id=parent_run_id)
    try:
        with mlflow.start_run(run_id=run_id):
            train, validation = pd.read_parquet(prepared.train_path), pd.read_parquet(prepared.validation_path)
            metrics, model_uri = _fit_and_log(prepared, config, train, validation, threshold)
    except Exception as error:
        tracking.fail_run(run_id, error)
        raise
    run_url = settings.run_url(tracking.connect(settings), run_id)
    return Trained(run_id=run_id, run_url=run_url, config=asdict(config), metrics=metrics, model_uri=model_uri)


def _fit_and_log(
    prepared: Prepared,
    config: model.ModelConfig,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    threshold: float,
) -> tuple[dict[str, float], str]:
    """Fit, evaluate and log one configuration in the active run; its validation metrics and model URI."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    records.CandidateRun(
        config=config.params(),
        threshold=threshold,
        train_rows=len(train),
        validation_rows=len(validation),
        validation_cutoff=datetime.fromisoformat(prepared.cutoff),
        evaluation_start=datetime.fromisoformat(prepared.evaluation_start),
        train_positive_rate=float(train[model.LABEL].mean()),
    ).write()
    tracking.log_dataset(train, "training", prepared.train_path, "training", model.LABEL)
    tracking.log_dataset(validation, "validation", prepared.validation_path, "validation", model.LABEL)

    fitted = fit(config, train, validation, prepared.features, threshold)
    pipe, evaluation = fitted.pipe, fitted.evaluation
    mlflow.log_metrics(evaluation.flat() | {"fit_seconds": fitted.fit_seconds})
    importances = importance(pipe, validation, prepared.features, config.seed)
    records.CandidateRun.log_details(
        {"threshold": threshold, "overall": evaluation.overall, "slices": evaluation.slices},
        importances,
        reference_sample(train, prepared.features, config.seed),
        model.CATEGORICAL,
        tracking.evaluation_figures(
            validation[model.LABEL].to_numpy(), fitted.probabilities, threshold, pd.Series(importances)
        ),
    )
    example = validation[prepared.features].head(5)
    logged = mlflow.sklearn.log_model(
        pipe,
        name=records.CandidateRun.MODEL,
        signature=infer_signature(example, pipe.predict_proba(example)[:, 1]),
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=model.SKOPS_TRUSTED_TYPES,
        pip_requirements=model.requirements(),  # inferring them imports the model in a subprocess
    )
    return evaluation.overall, logged.model_uri


def best(candidates: list[Trained], metric: str = "roc_auc") -> Trained:
    """The candidate with the highest validation `metric` (the first one on a tie)."""
    if not candidates:
        raise ValueError("no candidate was trained")
    return max(candidates, key=lambda c: (c["metrics"][metric], -candidates.index(c)))


def register_version(
    settings: Settings, model_uri: str, runs: tuple[str, ...] = (), parent_run_id: str = ""
) -> tuple[int, str]:
    """Register a logged model as the next version of the settings' model, with the Feast feature
    service `<model>_v<version>` that serves its features, named on the version (and on its training
    `runs`) as `records.Registration` says, which is what Feast's MLflow integration resolves; return
    the version and the service."""
    from mlflow import MlflowClient

    from include.feature_repo import definitions
    from include.mlops.feature_store import register_feature_service

    tracking.connect(settings)
    version = tracking.register(model_uri, settings.model_name)
    store = load_store(settings)
    service = register_feature_service(
        store,
        settings.model_name,
        version,
        [store.get_feature_view(view.name) for view in definitions.FEATURE_VIEWS],
        description=f"features of {settings.model_name} version {version}",
    )
    registration = records.Registration(settings.model_name, version, service.name, parent_run_id)
    registration.write(MlflowClient(), runs)
    return version, service.name


def register_best(settings: Settings, candidates: list[Trained], parent_run_id: str) -> dict[str, object]:
    """Register the best candidate as a model version and create its Feast feature service."""
    from mlflow import MlflowClient

    chosen = best(candidates)
    runs = (chosen["run_id"], parent_run_id)
    version, service = register_version(settings, chosen["model_uri"], runs, parent_run_id)
    MlflowClient().log_metric(parent_run_id, "best_roc_auc", chosen["metrics"]["roc_auc"])
    log.info("Registered %s version %s from run %s", settings.model_name, version, chosen["run_id"])
    return {
        "model": settings.model_name,
        "version": version,
        "run_id": chosen["run_id"],
        "feature_service": service,
    }


def close(settings: Settings, parent_run_id: str) -> list[str]:
    """Mark FAILED the runs of this training that are still open; return their ids.

    A nested run is open after training only when the attempt that started it died before it
    could close it; its task's retry trained again in a run of its own. The parent is open only
    when registration never happened.
    """
    from mlflow import MlflowClient

    tracking.connect(settings)
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    children = records.search(client, parent.info.experiment_id, records.open_children(parent_run_id))
    closed = []
    for child in children:
        tracking.fail_run(child.info.run_id, "its task attempt died before the run ended; a retry trained again")
        closed.append(child.info.run_id)
    if parent.info.status == "RUNNING":
        tracking.fail_run(parent_run_id, "a training or registration task failed; see the Airflow logs")
        closed.append(parent_run_id)
    if closed:
        log.warning("Marked FAILED the runs left open by failed attempts: %s", ", ".join(closed))
    return closed


def training_run(window: Interval, reason: str, context: dict[str, str] | None = None) -> records.TrainingRun:
    """What every training run records of itself: trigger reason, window, code version, who ran it."""
    return records.TrainingRun(reason, window.start, window.end, context or {}, tracking.code_version())


def train(
    settings: Settings,
    window: Interval,
    base: model.ModelConfig,
    configurations: int = 1,
    reason: str = "manual",
    airflow: dict[str, str] | None = None,
) -> dict[str, object]:
    """A whole training run in one process (what the DAG does across tasks)."""
    tags = training_run(window, reason, airflow).tags()
    parent = tracking.start_run(settings, f"training {window.key}", tags)
    try:
        prepared = prepare(settings, window, parent)
        candidates = [
            train_candidate(settings, prepared, config, parent, tags)
            for config in model.search_space(base, configurations)
        ]
        registered = register_best(settings, candidates, parent)
    except Exception as error:
        tracking.fail_run(parent, error)
        raise
    tracking.finish_run(parent)
    return registered | {"parent_run_id": parent, "candidates": len(candidates)}
