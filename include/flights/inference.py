"""Batch inference: the champion scores an interval's flights, each as of its prediction time.

- **Who is scored**: every flight the source's schedule says departs in the interval. The schedule
  is known in advance and carries no outcome, so cancelled and late-landing flights are scored
  like the others (the lake's outcomes would leave them out until they land).
- **With what**: the features known at each flight's prediction time (scheduled departure minus
  the lead), through Feast's point-in-time join on the offline store and the champion version's
  own feature service `<model>_v<version>`, so a model is always served the features it was
  trained with. On the replay clock a day's features exist once the day is over, so the daily run
  scores the interval that just ended, with exactly what an online scorer would have seen then.
- **By whom**: the version the alias `champion` points to when the step runs; every row carries
  that version and its MLflow run.
- **Where to**: the predictions log, the offline store's table `predictions/<model>`: one Parquet
  partition per interval (`state/lake/predictions/<model>/<interval>.parquet`), replaced when the
  interval is scored again, so a re-run never duplicates rows. The schedule that was scored is kept
  raw in the lake as well.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from include.flights import model, pipeline
from include.mlops import registry, tracking
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings
from include.mlops.validation import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from include.flights.source import FlightSource

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"  # the lake zone of the predictions log; its table is the model's name
PREDICTION = "prediction"  # the probability column
LOG_KEYS = ["flight_id", "event_timestamp", "sched_dep_at"]


class NoChampionError(LookupError):
    """No version of the model holds the alias `champion` yet."""


def champion(settings: Settings) -> tuple[int, str, str]:
    """The champion's version, its artifact URI and its MLflow run; `NoChampionError` if none."""
    from mlflow import MlflowClient

    tracking.connect(settings)
    client = MlflowClient()
    version = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if version is None:
        raise NoChampionError(
            f"no champion yet: no version of {settings.model_name} holds the alias '{registry.CHAMPION}'; "
            "train and promote one with training_pipeline first"
        )
    found = client.get_model_version(settings.model_name, str(version))
    return version, found.source, found.run_id


def score(settings: Settings, interval: Interval, source: FlightSource | None = None) -> dict[str, object]:
    """Score the interval's scheduled flights with the champion; replace the interval's predictions."""
    from include.flights.source import default_source
    from include.mlops.feature_store import feature_service_name, historical_features, load_store

    started = time.perf_counter()
    version, artifact, run_id = champion(settings)
    loaded, inputs, _ = tracking.load_model(artifact)
    missing_days = pipeline.days_without_features(settings, interval)
    if missing_days:
        raise DataValidationError(
            f"features missing for {missing_days[0]} ({len(missing_days)} days), needed to score {interval}: "
            "run feature_pipeline for it first"
        )
    lake = Lake(settings.lake_dir)
    schedule = (source or default_source()).flight_schedule(interval.start, interval.end)
    lake.archive("raw", "flight_schedule", interval.key, schedule)
    loading = time.perf_counter() - started

    started = time.perf_counter()
    if schedule.empty:
        log.warning("No flight is scheduled to depart in %s: the predictions log gets an empty partition", interval)
        frame = pipeline.request_features(schedule, settings)
        frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *inputs])))
    else:
        store = load_store(settings)
        service = store.get_feature_service(feature_service_name(settings.model_name, version))
        frame = historical_features(store, pipeline.request_features(schedule, settings), service)
    unserved = [c for c in inputs if c not in frame.columns]
    if unserved:
        raise DataValidationError(
            f"version {version} of {settings.model_name} needs inputs its feature service does not serve: "
            + ", ".join(unserved)
        )
    x = model.model_input(frame, inputs)
    features = time.perf_counter() - started

    started = time.perf_counter()
    probability = loaded.predict_proba(x)[:, 1] if len(x) else []
    scoring = time.perf_counter() - started

    predictions = (
        frame[LOG_KEYS]
        .join(x)
        .assign(
            **{
                PREDICTION: probability,
                "model_name": settings.model_name,
                "model_version": version,
                "model_run_id": run_id,
            }
        )
    )
    path = lake.write_partition(PREDICTIONS, settings.model_name, interval.key, predictions)
    log.info("Version %s of %s scored %d flights of %s into %s", version, settings.model_name, len(x), interval, path)
    return {
        "interval": interval.key,
        "rows": len(predictions),
        "model": settings.model_name,
        "model_version": version,
        "model_run_id": run_id,
        "path": str(path),
        "mean_probability": float(predictions[PREDICTION].mean()) if len(predictions) else None,
        "seconds": {"loading": loading, "features": features, "scoring": scoring},
    }


def predictions(settings: Settings, window: Interval) -> pd.DataFrame:
    """The predictions log of the flights departing in `window` (empty if none were scored)."""
    return Lake(settings.lake_dir).read(PREDICTIONS, settings.model_name, window, "sched_dep_at", ["flight_id"])


def with_labels(settings: Settings, scored: pd.DataFrame, known_by: datetime) -> pd.DataFrame:
    """The scored flights whose outcome landed before `known_by`, with their label `is_late`."""
    if scored.empty:
        return scored.assign(**{model.LABEL: []})
    horizon = Interval(scored["sched_dep_at"].min(), known_by)
    outcomes = Lake(settings.lake_dir).read("clean", "flight_outcomes", horizon, "outcome_at", ["flight_id"])
    if outcomes.empty:
        return scored.iloc[0:0].assign(**{model.LABEL: []})
    late = outcomes["arr_delay"].isna() | (outcomes["arr_delay"] >= settings.late_minutes)
    labels = outcomes[["flight_id"]].assign(**{model.LABEL: late.astype("int64")})
    return scored.merge(labels, on="flight_id", how="inner")


def unscored_days(settings: Settings, window: Interval) -> list[str]:
    """The UTC days of `window` that the predictions log does not cover."""
    missing = Lake(settings.lake_dir).missing_days(PREDICTIONS, settings.model_name, window)
    return [day.start.date().isoformat() for day in missing]
