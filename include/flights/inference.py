"""Inference: the champion predicts flights before they leave, each as of its prediction time.

- **When**: on the hour. A flight's prediction time is the last hour at or before its scheduled
  departure minus the lead (`pipeline.prediction_time`), so with the default 2-hour lead it is
  predicted 2 to 3 hours ahead. `score(interval)` makes the predictions of the hours in
  (start, end]: once `feature_pipeline` has processed the data up to `end`, everything a
  prediction at `end` reads is known and written.
- **Who is scored**: every flight the source's schedule says departs in `departures_predicted_in`
  the interval. The schedule is known in advance and carries no outcome, so cancelled and
  late-landing flights are scored like the others.
- **With what**: the champion version's own feature service `<model>_v<version>`, so a model is
  always served the features it was trained with. A run of one hour whose features are the
  latest the pipeline has built (the live, scheduled case) reads them from the online store;
  any other run (a re-run, a catch-up, a longer manual interval) reads the same values from the
  offline store's point-in-time join, because the online store only holds the present. Each row
  records which (`served_from`); a live run checks every flight's online values against the
  offline ones (`feature_store.disagreeing`) and records those that differ (`skew`).
- **By whom**: the version the alias `champion` points to when the step runs; every row carries
  that version and its MLflow run.
- **Where to**: the predictions log, the offline store's table `predictions/<model>`: one Parquet
  partition per scored interval, keyed by the departures it covers, replaced when the interval is
  scored again, so a re-run never duplicates rows. Each row holds the flight, its prediction time
  (`event_timestamp`, the instant the prediction is made as of, never after its scheduled
  departure minus the lead), the features used, the probability, the model, and `scored_at`, the
  wall-clock time the row was written. The schedule that was scored is kept raw in the lake.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from include.flights import features, model, pipeline
from include.mlops import registry, tracking
from include.mlops.domain import NotFoundError
from include.mlops.lake import Interval, Lake
from include.mlops.records import PredictionBatch
from include.mlops.registry import NoChampionError
from include.mlops.settings import Settings
from include.mlops.validation import DataValidationError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from include.flights.source import FlightSource

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"  # the lake zone of the predictions log; its table is the model's name
PREDICTION = "prediction"  # the probability column
SKEW = "skew"  # online-served rows: the features that differed from the offline store ("" if none)
LOG_KEYS = ["flight_id", "event_timestamp", "sched_dep_at"]


def champion(settings: Settings, client: MlflowClient | None = None) -> tuple[int, str, str]:
    """The champion's version, its artifact URI and its MLflow run; `NoChampionError` if none.
    `client`: an MLflow client already connected to the settings' stores (default: connect)."""
    from mlflow import MlflowClient

    if client is None:
        tracking.connect(settings)
        client = MlflowClient()
    found = registry.aliased(client, settings.model_name, registry.CHAMPION)
    if found is None:
        raise NoChampionError(
            f"no champion yet: no version of {settings.model_name} holds the alias '{registry.CHAMPION}'; "
            "train and promote one with training_pipeline first"
        )
    return int(found.version), found.source, found.run_id


def score(settings: Settings, interval: Interval, source: FlightSource | None = None) -> PredictionBatch:
    """Make the predictions of the hours in (start, end] with the champion; replace the
    interval's partition of the predictions log."""
    from include.mlops.feature_store import (
        disagreeing,
        historical_features,
        load_store,
        model_feature_service,
        online_features,
        view_ttls,
    )

    started = time.perf_counter()
    version, artifact, run_id = champion(settings)
    loaded, inputs, _ = tracking.load_model(artifact)
    missing_days = pipeline.days_without_features_to_predict(settings, interval)
    if missing_days:
        raise DataValidationError(
            f"features missing for {missing_days[0]} ({len(missing_days)} days), needed to score {interval}: "
            "run feature_pipeline for it first"
        )
    departing = pipeline.departures_predicted_in(settings, interval)
    lake = Lake(settings.lake_dir)
    schedule = (source or pipeline.flight_source(settings)).flight_schedule(departing.start, departing.end)
    lake.archive("raw", "flight_schedule", departing.key, schedule)
    requests = pipeline.request_features(schedule, settings)
    live = interval.end - interval.start == features.STEP and not pipeline.features_built_after(settings, interval.end)
    loading = time.perf_counter() - started

    started = time.perf_counter()
    skew = None  # per flight, the features whose online value differed from the offline one
    if requests.empty:
        log.warning("No flight departs in %s: the predictions log gets an empty partition", departing)
        frame = requests.reindex(columns=list(dict.fromkeys([*requests.columns, *inputs])))
    else:
        store = load_store(settings)
        service = model_feature_service(store, settings.tracking_uri, settings.model_name, version)
        frame = historical_features(store, requests, service)
        if live:  # served online, and checked value for value against the offline store
            served = online_features(store, requests, service, pipeline.ENTITY_KEYS, view_ttls(store, service))
            differs = disagreeing(served, frame, [c for c in frame.columns if "__" in c])
            skew = [",".join(differs.columns[row]) for row in differs.to_numpy()]
            frame = served
        frame = features.request_time_features(frame)
    unserved = [c for c in inputs if c not in frame.columns]
    if unserved:
        raise DataValidationError(
            f"version {version} of {settings.model_name} needs inputs its feature service does not serve: "
            + ", ".join(unserved)
        )
    x = model.model_input(frame, inputs)
    serving = time.perf_counter() - started

    started = time.perf_counter()
    probability = loaded.predict_proba(x)[:, 1] if len(x) else []
    scoring = time.perf_counter() - started

    served_from = "online" if live else "offline"
    predictions = (
        frame[LOG_KEYS]
        .join(x)
        .assign(
            **{
                PREDICTION: probability,
                "model_name": settings.model_name,
                "model_version": version,
                "model_run_id": run_id,
                "served_from": served_from,
                SKEW: skew,
                "scored_at": datetime.now(UTC),
            }
        )
    )
    path = lake.write_partition(PREDICTIONS, settings.model_name, departing.key, predictions)
    log.info(
        "Version %s of %s scored %d flights departing in %s (%s features) into %s",
        version, settings.model_name, len(x), departing, served_from, path,
    )  # fmt: skip
    skewed = predictions[predictions[SKEW].fillna("") != ""]
    if len(skewed):
        columns = sorted({c for found in skewed[SKEW] for c in found.split(",")})
        raise DataValidationError(
            f"training-serving skew: the online store served {len(skewed)} of {len(predictions)} flights departing "
            f"in {departing} features that differ from the offline store's ({', '.join(columns)}); "
            f"the predictions are kept at {path}"
        )
    return PredictionBatch(
        interval=interval.key,
        departing=departing.key,
        rows=len(predictions),
        served_from=served_from,
        model=settings.model_name,
        model_version=version,
        model_run_id=run_id,
        path=str(path),
        mean_probability=float(predictions[PREDICTION].mean()) if len(predictions) else None,
        seconds={"loading": loading, "features": serving, "scoring": scoring},
    )


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
    labels = outcomes[["flight_id"]].assign(
        **{model.LABEL: features.is_late(outcomes["arr_delay"], settings.late_minutes)}
    )
    return scored.merge(labels, on="flight_id", how="inner")


class FlightNotFoundError(NotFoundError):
    """No flight with that identity is scheduled."""


@dataclass
class FlightScorer:
    """One flight's probability on demand (the MLOps app's scoring route), from the champion and
    the online store, with the same request features and feature service as the hourly runs.

    Keeps the champion's model, its feature service and the feature store between calls; asks
    the registry for the champion on every call, so a promotion or rollback is served from the
    next request on. One flight is predicted on one thread: a gradient-boosting model's OpenMP
    threads cost more to wake than a row costs to score, and far more when the cores are busy.
    """

    settings: Settings
    source: FlightSource | None = None
    _champion: tuple[int, object, list[str], object, dict] | None = None  # version, model, inputs, service, TTLs
    _store: object = None
    _threads: object = None
    _client: MlflowClient | None = None

    def _serving(self, version: int, artifact: str) -> tuple[object, list[str], object, dict]:
        """The version's model, inputs, feature service and its views' TTLs, loaded once per version."""
        from threadpoolctl import ThreadpoolController

        from include.mlops.feature_store import load_store, model_feature_service, view_ttls

        if self._champion is None or self._champion[0] != version:
            loaded, inputs, _ = tracking.load_model(artifact)
            self._store = self._store or load_store(self.settings)
            # Read from the registry itself, not its cache (the version's feature service may be new);
            # the fresh read becomes the cache the online reads use.
            service = model_feature_service(self._store, self.settings.tracking_uri, self.settings.model_name, version)
            self._champion = (version, loaded, inputs, service, view_ttls(self._store, service))
            self._threads = self._threads or ThreadpoolController()
        return self._champion[1:]

    def score(self, flight_id: str, at: datetime | None = None) -> dict[str, object]:
        """The flight's probability as of `at` (default: now; on the hour, as the hourly runs
        predict), which may not be after the flight's prediction time."""
        import pandas as pd

        from include.mlops.feature_store import online_features

        if self._client is None:
            from mlflow import MlflowClient

            tracking.connect(self.settings)
            self._client = MlflowClient()
        version, artifact, run_id = champion(self.settings, self._client)
        loaded, inputs, service, ttls = self._serving(version, artifact)
        try:
            sched = datetime.strptime(flight_id[:13], "%Y%m%dT%H%M").replace(tzinfo=UTC)
        except ValueError:
            raise FlightNotFoundError(
                f"not a flight id (YYYYMMDDTHHMM-<carrier><number>-<origin>): {flight_id!r}"
            ) from None
        if self.source is None:  # once: checking the state folder's clock reads a file
            self.source = pipeline.flight_source(self.settings)
        schedule = self.source.flight_schedule(sched, sched + timedelta(minutes=1))
        flight = schedule[schedule["flight_id"] == flight_id]
        if flight.empty:
            raise FlightNotFoundError(f"no flight {flight_id} is scheduled")
        request = pipeline.request_features(flight, self.settings)
        predicted_at = request["event_timestamp"].iloc[0]
        as_of = (at or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
        if as_of > predicted_at:
            raise ValueError(
                f"flight {flight_id} was predicted at {predicted_at.isoformat()}, before {as_of.isoformat()}: "
                "its prediction is in the predictions log"
            )
        frame = online_features(self._store, request.assign(event_timestamp=as_of), service, pipeline.ENTITY_KEYS, ttls)
        frame = features.request_time_features(frame)
        x = model.model_input(frame, inputs)
        with self._threads.limit(limits=1, user_api="openmp"):
            probability = float(loaded.predict_proba(x)[0, 1])
        return {
            "flight_id": flight_id,
            "probability": probability,
            "model_name": self.settings.model_name,
            "model_version": version,
            "model_run_id": run_id,
            "as_of": as_of.isoformat(),
            "prediction_time": predicted_at.isoformat(),
            "sched_dep_at": flight["sched_dep_at"].iloc[0].isoformat(),
            "features": {column: None if pd.isna(value) else value for column, value in x.iloc[0].to_dict().items()},
        }
