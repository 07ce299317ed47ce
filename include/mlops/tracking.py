"""MLflow helpers: where tracking lives, runs that span processes, datasets, plots, registration."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from include.mlops import records
from include.mlops.compat import mlflow as compat
from include.mlops.evaluation import Classifier
from include.mlops.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def connect(settings: Settings, experiment: str | None = None) -> str:
    """Point MLflow at the settings' tracking store and return the id of `experiment` (default: the
    settings' model's training runs), created if need be.

    The embedded default keeps its SQLite database and artifacts in the state folder.
    """
    import mlflow

    # MLflow draws a progress bar on stderr for every artifact download, which Airflow logs as errors.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.mlflow_tracking_uri is None:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    experiment = experiment or records.training_experiment(settings.model_name)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = (settings.mlflow_dir / "artifacts").as_uri() if settings.mlflow_tracking_uri is None else None
    return mlflow.create_experiment(experiment, artifact_location=location)


def code_version() -> str:
    """The version of the code that runs, for MLflow's code-version tag: `MLOPS_CODE_VERSION` where
    the code is deployed without its git history (an image), else the checkout's commit, else "".

    MLflow's own detection looks at the entry-point script, which under Airflow is Airflow's.
    """
    version = os.environ.get("MLOPS_CODE_VERSION")
    if not version:
        try:
            found = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        version = found.stdout.strip() if found.returncode == 0 else ""
    return version


def start_run(settings: Settings, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
    """Create a run (nested under `parent_run_id` if given) that later steps resume by id."""
    from mlflow import MlflowClient

    experiment_id = connect(settings)
    all_tags = dict(tags) | ({records.PARENT: parent_run_id} if parent_run_id else {})
    return MlflowClient().create_run(experiment_id, tags=all_tags, run_name=name).info.run_id


def fail_run(run_id: str, error: BaseException | str) -> None:
    """Mark a run FAILED with the error that ended it."""
    from mlflow import MlflowClient

    records.fail(MlflowClient(), run_id, error)


def finish_run(run_id: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_terminated(run_id, status="FINISHED")


def log_dataset(frame: pd.DataFrame, name: str, source: str, context: str, targets: str) -> None:
    """Record a data set (schema, digest of every row, source) as an input of the active run."""
    import mlflow
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]
    dataset = mlflow.data.from_pandas(frame, source=source, name=name, targets=targets, digest=digest)
    mlflow.log_input(compat.with_schema(dataset, frame), context=context)


def evaluation_figures(
    y: np.ndarray, p: np.ndarray, threshold: float, importance: pd.Series | None = None
) -> dict[str, object]:
    """The plots a person looks at: ROC and PR curves, calibration, confusion matrix, importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    figures = {}
    for name, display in (
        ("roc_curve", RocCurveDisplay.from_predictions),
        ("pr_curve", PrecisionRecallDisplay.from_predictions),
        ("calibration_curve", lambda y, p, ax: CalibrationDisplay.from_predictions(y, p, n_bins=10, ax=ax)),
    ):
        figure, axis = plt.subplots(figsize=(5, 5))
        display(y, p, ax=axis)
        axis.set_title(name.replace("_", " "))
        figures[name] = figure
    figure, axis = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_predictions(y, (p >= threshold).astype(int), ax=axis, colorbar=False)
    axis.set_title(f"confusion matrix at {threshold:.2f}")
    figures["confusion_matrix"] = figure
    if importance is not None:
        top = importance.sort_values().tail(25)
        figure, axis = plt.subplots(figsize=(7, 8))
        top.plot.barh(ax=axis)
        axis.set_title("permutation importance (validation ROC AUC drop)")
        figure.tight_layout()
        figures["feature_importance"] = figure
    return figures


def register(model_uri: str, model_name: str) -> int:
    """Register a logged model as a new version of `model_name`; return the version."""
    import mlflow

    version = mlflow.register_model(model_uri, model_name)
    return int(version.version)


def load_model(source: str) -> tuple[Classifier, list[str], float]:
    """A logged scikit-learn model from its artifact URI: the model, its input columns (from the
    signature) and its size in MB."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source))
    size_mb = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 2**20
    inputs = mlflow.models.Model.load(local).get_input_schema().input_names()
    return mlflow.sklearn.load_model(str(local)), inputs, size_mb


def save_frame(frame: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)
