"""Feature computations of the flights domain, each correct as of its feature timestamp.

Every feature row carries `event_timestamp`, the instant from which it is known (repeated
as the feature `observed_at_unix` / `stats_as_of_unix`, in Unix seconds):

- weather: an observation is known from the hour it was taken (`observed_at`);
- aircraft: static reference attributes, known since always (the Unix epoch);
- operations (`origin_ops`, `carrier_ops`, `route_ops`): trailing statistics on an hourly
  grid. The row stamped `g` counts only flights whose outcome was known strictly before
  `g` (landed, or cancelled/diverted once due), over the windows [g - 1h, g),
  [g - 24h, g) and [g - 7d, g). A flight is late when it arrived `late_minutes` or more
  behind schedule, or never arrived. A row is written for an hour only when its key had
  an outcome in the past 7 days; Feast's TTL of one hour then reads "no row" as "no
  recent flights" rather than serving a stale one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

WINDOWS_HOURS = {"1h": 1, "24h": 24, "7d": 7 * 24}
OPERATIONS_KEYS = {"origin_ops": "origin", "carrier_ops": "carrier", "route_ops": "route"}
WEATHER_FEATURES = [
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
]  # fmt: skip
AIRCRAFT_FEATURES = ["plane_year", "seats", "engines", "engine"]
OPERATIONS_FEATURES = [
    f"{stat}_{window}" for window in WINDOWS_HOURS for stat in ("n_flights", "late_share", "mean_arr_delay")
]
EPOCH = "1970-01-01T00:00:00Z"


def route_of(frame: pd.DataFrame) -> pd.Series:
    return frame["origin"] + "-" + frame["dest"]


def weather_features(weather: pd.DataFrame) -> pd.DataFrame:
    """One row per origin and observation."""
    rows = weather[["origin", "observed_at", *WEATHER_FEATURES]].rename(columns={"observed_at": "event_timestamp"})
    rows = rows.astype({name: "float64" for name in WEATHER_FEATURES}).reset_index(drop=True)
    rows["observed_at_unix"] = _unix_seconds(rows["event_timestamp"])
    return rows


def aircraft_features(planes: pd.DataFrame) -> pd.DataFrame:
    """One row per tail number, valid since the epoch."""
    import pandas as pd

    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"].astype(str),
            "event_timestamp": pd.Timestamp(EPOCH),
            "plane_year": planes["year"].astype("float64"),
            "seats": planes["seats"].astype("float64"),
            "engines": planes["engines"].astype("float64"),
            "engine": planes["engine"].fillna("unknown").astype(str),
        }
    )


def operations_features(
    outcomes: pd.DataFrame, key: str, start: datetime, end: datetime, late_minutes: int
) -> pd.DataFrame:
    """Trailing delay statistics by `key` on the hourly grid of [start, end).

    `outcomes` must hold every outcome in [start - 7 days, end) (more is ignored).
    """
    import numpy as np
    import pandas as pd

    grid = pd.date_range(pd.Timestamp(start).ceil("h"), pd.Timestamp(end), freq="h", inclusive="left")
    columns = [key, "event_timestamp", *OPERATIONS_FEATURES, "stats_as_of_unix"]
    longest = max(WINDOWS_HOURS.values())
    if grid.empty:
        return _typed_operations(pd.DataFrame(columns=columns), key)

    hours = pd.date_range(grid[0] - pd.Timedelta(hours=longest - 1), grid[-1], freq="h")
    # An outcome at 09:59 is first counted at 10:00; one at 10:00 sharp, at 11:00.
    bucket = outcomes["outcome_at"].dt.floor("h") + pd.Timedelta(hours=1)
    keep = (bucket >= hours[0]) & (bucket <= hours[-1])
    keys = outcomes[key] if key != "route" else route_of(outcomes)
    arr_delay = outcomes["arr_delay"]
    events = pd.DataFrame(
        {
            "key": keys[keep].to_numpy(),
            "hour": ((bucket[keep] - hours[0]) // pd.Timedelta(hours=1)).to_numpy(),
            "n": 1,
            "late": (arr_delay[keep].isna() | (arr_delay[keep] >= late_minutes)).to_numpy(dtype="int64"),
            "arrived": arr_delay[keep].notna().to_numpy(dtype="int64"),
            "delay": arr_delay[keep].fillna(0).to_numpy(),
        }
    )
    if events.empty:
        return _typed_operations(pd.DataFrame(columns=columns), key)

    names = np.sort(events["key"].unique())
    row = np.searchsorted(names, events["key"].to_numpy())
    shape = (len(names), len(hours) + 1)  # column 0 is the zero before the first hour
    cumulative = {}
    for measure in ("n", "late", "arrived", "delay"):
        dense = np.zeros(shape)
        np.add.at(dense, (row, events["hour"].to_numpy() + 1), events[measure].to_numpy())
        cumulative[measure] = dense.cumsum(axis=1)

    at = np.arange(len(hours) - len(grid), len(hours)) + 1  # grid hours as cumulative columns
    data: dict[str, np.ndarray] = {}
    for window, width in WINDOWS_HOURS.items():
        sums = {m: c[:, at] - c[:, at - width] for m, c in cumulative.items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            data[f"n_flights_{window}"] = sums["n"]
            data[f"late_share_{window}"] = np.where(sums["n"] > 0, sums["late"] / sums["n"], np.nan)
            data[f"mean_arr_delay_{window}"] = np.where(sums["arrived"] > 0, sums["delay"] / sums["arrived"], np.nan)
    active = data["n_flights_7d"] > 0
    key_index, grid_index = np.nonzero(active)
    frame = pd.DataFrame(
        {
            key: names[key_index],
            "event_timestamp": grid[grid_index],
            **{name: values[key_index, grid_index] for name, values in data.items()},
        }
    )
    return _typed_operations(frame.sort_values(["event_timestamp", key]).reset_index(drop=True), key)


def _typed_operations(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    import pandas as pd

    types = {name: ("int64" if name.startswith("n_flights") else "float64") for name in OPERATIONS_FEATURES}
    frame = frame.astype({key: "object", **types})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["stats_as_of_unix"] = _unix_seconds(frame["event_timestamp"])
    return frame


def _unix_seconds(stamps: pd.Series) -> pd.Series:
    """A row's own timestamp as a feature, so that consumers can check it is not in the future."""
    import pandas as pd

    return ((stamps - pd.Timestamp(EPOCH)) // pd.Timedelta(seconds=1)).astype("int64")
