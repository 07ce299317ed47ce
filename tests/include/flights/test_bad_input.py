"""Bad input: each case gets a clear error or a quarantine, and the raw batch is always kept."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.flights import pipeline, schema
from include.flights.source import Nycflights13Source
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings
from include.mlops.validation import REASON_COLUMN, DataValidationError, validate

DAY = Interval(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


@dataclass
class TamperedSource:
    """The real source, with the interval's flight outcomes passed through `tamper`."""

    real: Nycflights13Source
    tamper: Callable[[pd.DataFrame], pd.DataFrame]
    name: str = "tampered"

    def flight_outcomes(self, start: datetime, end: datetime) -> pd.DataFrame:
        rows = self.real.flight_outcomes(start, end)
        return self.tamper(rows) if (start, end) == (DAY.start, DAY.end) else rows

    def flight_schedule(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self.real.flight_schedule(start, end)

    def departures(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self.real.departures(start, end)

    def weather(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self.real.weather(start, end)

    def planes(self) -> pd.DataFrame:
        return self.real.planes()


def run(settings: Settings, source: TamperedSource) -> list[pipeline.Batch]:
    batches = pipeline.ingest(settings, DAY, source)
    pipeline.validate_batches(settings, batches)
    return batches


def raw_kept(settings: Settings) -> pd.DataFrame:
    """The archived raw flight outcomes of the day, exactly one batch of them."""
    files = list((settings.lake_dir / "raw" / "flight_outcomes" / DAY.key).glob("*.jsonl.gz"))
    assert len(files) == 1
    return Lake(settings.lake_dir).read_archive(files[0])


def quarantined(settings: Settings) -> pd.DataFrame:
    files = list((settings.lake_dir / "quarantine" / "flight_outcomes" / DAY.key).glob("*.jsonl.gz"))
    return pd.concat([Lake(settings.lake_dir).read_archive(f) for f in files]) if files else pd.DataFrame()


def test_missing_column_fails_naming_it_and_keeps_raw(settings: Settings, source: Nycflights13Source) -> None:
    with pytest.raises(DataValidationError, match=r"flight_outcomes: missing column\(s\) arr_delay"):
        run(settings, TamperedSource(source, lambda f: f.drop(columns="arr_delay")))
    assert len(raw_kept(settings)) > 500


def test_wrong_type_rows_are_quarantined_with_reason(settings: Settings, source: Nycflights13Source) -> None:
    def corrupt(flights: pd.DataFrame) -> pd.DataFrame:
        flights = flights.astype({"distance": object})
        flights.loc[:4, "distance"] = "far"
        return flights

    run(settings, TamperedSource(source, corrupt))  # 5 bad rows stay under the 5% threshold
    bad = quarantined(settings)
    assert len(bad) == 5
    assert (bad["distance"] == "far").all()
    assert (bad[REASON_COLUMN] == "distance: not a valid float").all()
    clean = pd.read_parquet(Lake(settings.lake_dir).partition_path("clean", "flight_outcomes", DAY.key))
    assert len(clean) + len(bad) == len(raw_kept(settings))


def test_whole_column_of_wrong_type_fails_the_interval(settings: Settings, source: Nycflights13Source) -> None:
    with pytest.raises(DataValidationError, match=r"rows rejected \(100.0%, threshold 5.0%\).*not a valid timestamp"):
        run(settings, TamperedSource(source, lambda f: f.assign(outcome_at="yesterday")))
    assert len(quarantined(settings)) == len(raw_kept(settings))


def test_storm_of_nans_fails_naming_the_columns(settings: Settings, source: Nycflights13Source) -> None:
    def storm(flights: pd.DataFrame) -> pd.DataFrame:
        return flights.assign(arr_delay=np.nan, tailnum=None)

    with pytest.raises(DataValidationError) as error:
        run(settings, TamperedSource(source, storm))
    assert "column tailnum is 100% null" in str(error.value)
    assert "column arr_delay is 100% null" in str(error.value)
    assert raw_kept(settings)["arr_delay"].isna().all()


def test_nans_in_required_columns_are_quarantined(settings: Settings, source: Nycflights13Source) -> None:
    def holes(flights: pd.DataFrame) -> pd.DataFrame:
        flights.loc[flights.index[:300], "origin"] = None
        return flights

    with pytest.raises(DataValidationError, match="origin: missing"):
        run(settings, TamperedSource(source, holes))
    assert (quarantined(settings)[REASON_COLUMN] == "origin: missing").sum() == 300


def test_duplicate_rows_keep_the_first_and_quarantine_the_rest(settings: Settings, source: Nycflights13Source) -> None:
    run(settings, TamperedSource(source, lambda f: pd.concat([f, f.iloc[:10]], ignore_index=True)))
    bad = quarantined(settings)
    assert len(bad) == 10
    assert (bad[REASON_COLUMN] == "duplicate flight_id").all()
    clean = pd.read_parquet(Lake(settings.lake_dir).partition_path("clean", "flight_outcomes", DAY.key))
    assert clean["flight_id"].is_unique


def test_timestamps_outside_the_interval_are_quarantined(settings: Settings, source: Nycflights13Source) -> None:
    def late(flights: pd.DataFrame) -> pd.DataFrame:
        flights.loc[flights.index[:3], "outcome_at"] = DAY.end + pd.Timedelta(hours=5)
        return flights

    run(settings, TamperedSource(source, late))
    assert (quarantined(settings)[REASON_COLUMN] == "outcome_at: outside the interval").sum() == 3


def test_empty_interval_fails_with_a_clear_message(settings: Settings, source: Nycflights13Source) -> None:
    with pytest.raises(DataValidationError, match=r"flight_outcomes: 0 rows in \[2026-11-27T00:00:00\+00:00"):
        run(settings, TamperedSource(source, lambda f: f.iloc[0:0]))
    assert raw_kept(settings).empty


def test_naive_timestamps_are_refused(source: Nycflights13Source) -> None:
    flights = source.flight_outcomes(DAY.start, DAY.end)
    flights["outcome_at"] = flights["outcome_at"].dt.tz_localize(None)
    with pytest.raises(DataValidationError, match="outcome_at holds timestamps without a time zone"):
        validate(flights, schema.FLIGHT_OUTCOMES, DAY.start, DAY.end)


def test_rerun_with_different_input_keeps_both_raw_batches(settings: Settings, source: Nycflights13Source) -> None:
    run(settings, TamperedSource(source, lambda f: f))
    run(settings, TamperedSource(source, lambda f: f.iloc[1:]))
    run(settings, TamperedSource(source, lambda f: f))  # the same input again writes nothing new
    files = sorted((settings.lake_dir / "raw" / "flight_outcomes" / DAY.key).glob("*.jsonl.gz"))
    assert len(files) == 2
    assert all(gzip.decompress(Path(f).read_bytes()) for f in files)
