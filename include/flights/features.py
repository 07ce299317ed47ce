"""Feature computations of the flights domain, each correct as of its feature timestamp.

Every feature row carries `event_timestamp`, the instant from which it is known (repeated
as the feature `observed_at_unix` / `stats_as_of_unix`, in Unix seconds):

- weather: an hour's observation is known once the hour is over (`observed_at`);
- aircraft: static reference attributes, known since always (the Unix epoch);
- operations (`origin_ops`, `carrier_ops`, `route_ops`): trailing statistics on the hourly
  grid. The row stamped `g` counts only flights whose outcome was known strictly before
  `g` (landed, or cancelled/diverted once due), over the windows [g - 1h, g),
  [g - 24h, g) and [g - 7d, g). A flight is late when it arrived `late_minutes` or more
  behind schedule, or never arrived. A row is written for an hour only when its key had
  an outcome in the past 7 days; Feast's TTL of one hour then reads "no row" as "no
  recent flights" rather than serving a stale one.
- departures (`origin_departures`, `carrier_departures`): what the departure board has shown
  over the last two hours, on the hourly grid, by origin and by carrier at origin. The row
  stamped `g` counts departures (and cancellations, known by their scheduled departure) in
  [g - 2h, g): how many left, how many were cancelled, their mean departure delay and the
  share that left `late_minutes` or more late. A row is written whenever its key had a
  departure in the past 24 hours, so that a quiet airport reads 0, not "unknown"; Feast's TTL
  of one hour serves no stale row. The board also shows who is still waiting: of the flights
  scheduled to leave in [g - 2h, g), how many had neither left nor been cancelled by g
  (`n_waiting_2h`), their share of those scheduled (`waiting_share_2h`), and how long past
  their scheduled departure they had waited at g, on average (`mean_wait_2h`, 0 when none
  waits). A flight that left at 10:00 sharp is still waiting at 10:00 (the rule below). The
  departures alone hide a queue: a flight that has not left yet is not on them, and their
  mean delay is lowest when the longest delays are still to come.
- aircraft departures (`aircraft_departures`): the aircraft's latest departure from New York
  known at each hour: a row per tail number and departure, stamped at the first grid time after
  it left (or, cancelled, was due), with its departure delay (null when cancelled) and when it
  left (`previous_departed_at_unix`); once that flight's outcome is known, a second row, stamped
  at the first grid time after it, adds its arrival delay (`previous_arr_delay`, null while it
  flies and when it never arrived) and `previous_in_air` turns from 1 to 0; an outcome is written
  only while its flight is still the aircraft's latest departure (a cancelled flight's outcome,
  known when it was due, may come after the aircraft's next departure). Feast's TTL of 24 hours
  makes it "today's". How long ago
  it left depends on when the prediction is made, so `hours_since_previous_departure` is computed
  from the request's time after the join (`request_time_features`), the same way for training
  and serving.

Trailing statistics share one rule: an event known at instant x is counted from the first
grid time after x (an outcome at 09:59 is first counted at 10:00, one at 10:00 sharp at 11:00).

An interval [start, end) of data yields the rows stamped in (start, end]: the row stamped
`end` summarises what was known before `end`, so it is written with the interval that ends
there. Predictions are made on the hour (`include.flights.pipeline`), so once the pipeline
has processed the interval ending at T, the rows a prediction at T reads are all written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
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
DEPARTURE_KEYS = {"origin_departures": "origin", "carrier_departures": "carrier_origin"}
DEPARTURE_WINDOW_HOURS = 2
DEPARTURE_REACH = timedelta(hours=24)  # how far back a departure keeps its key's rows written
STEP = timedelta(hours=1)  # the grid of the trailing statistics
MINUTE = timedelta(minutes=1)
COVERAGE_VIEW = "weather"  # the view whose partitions say which hours have features
DEPARTURE_FEATURES = [
    "n_departures_2h", "n_cancelled_2h", "mean_dep_delay_2h", "late_departure_share_2h",
    "n_waiting_2h", "waiting_share_2h", "mean_wait_2h",
]  # fmt: skip
AIRCRAFT_DEPARTURE_FEATURES = ["previous_dep_delay", "previous_arr_delay", "previous_in_air"]
AIRCRAFT_DEPARTURE_TTL = timedelta(hours=24)  # the longest a served row may be: "today's" departure
# Computed after the join from the request's time: the column it adds -> the served column it needs.
SINCE_PREVIOUS = "aircraft_departures__hours_since_previous_departure"
REQUEST_TIME = {SINCE_PREVIOUS: "aircraft_departures__previous_departed_at_unix"}
EPOCH = "1970-01-01T00:00:00Z"


def route_of(frame: pd.DataFrame) -> pd.Series:
    return frame["origin"] + "-" + frame["dest"]


def carrier_origin_of(frame: pd.DataFrame) -> pd.Series:
    return frame["carrier"] + "-" + frame["origin"]


def weather_features(weather: pd.DataFrame) -> pd.DataFrame:
    """One row per origin and observation, stamped when it was published."""
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


def is_late(arr_delay: pd.Series, late_minutes: int) -> pd.Series:
    """The label, as 0 or 1: a flight is late when it arrived `late_minutes` or more late, or
    never arrived (cancelled or diverted)."""
    return (arr_delay.isna() | (arr_delay >= late_minutes)).astype("int64")


def operations_features(
    outcomes: pd.DataFrame, key: str, start: datetime, end: datetime, late_minutes: int
) -> pd.DataFrame:
    """Trailing delay statistics by `key` on the hourly grid of (start, end].

    `outcomes` must hold every outcome in [start - 7 days, end) (more is ignored).
    """
    import numpy as np
    import pandas as pd

    grid = grid_of(start, end)
    keys = outcomes[key] if key != "route" else route_of(outcomes)
    arr_delay = outcomes["arr_delay"]
    measures = {
        "n": np.ones(len(outcomes)),
        "late": is_late(arr_delay, late_minutes).to_numpy(dtype="float64"),
        "arrived": arr_delay.notna().to_numpy(dtype="float64"),
        "delay": arr_delay.fillna(0).to_numpy(),
    }
    names, sums = _trailing_sums(keys, outcomes["outcome_at"], measures, grid, WINDOWS_HOURS)
    if not len(names):
        return _typed(
            pd.DataFrame(columns=[key, "event_timestamp", *OPERATIONS_FEATURES]),
            key,
            OPERATIONS_FEATURES,
            "stats_as_of_unix",
        )
    data: dict[str, np.ndarray] = {}
    for window, s in sums.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            data[f"n_flights_{window}"] = s["n"]
            data[f"late_share_{window}"] = np.where(s["n"] > 0, s["late"] / s["n"], np.nan)
            data[f"mean_arr_delay_{window}"] = np.where(s["arrived"] > 0, s["delay"] / s["arrived"], np.nan)
    frame = _rows(key, names, grid, data, active=data["n_flights_7d"] > 0)
    return _typed(frame, key, OPERATIONS_FEATURES, "stats_as_of_unix")


def departure_features(
    departures: pd.DataFrame, schedule: pd.DataFrame, key: str, start: datetime, end: datetime, late_minutes: int
) -> pd.DataFrame:
    """The last two hours of the departure board by `key` on the hourly grid of (start, end].

    `departures` must hold every departure known in [start - 24 hours, end), and `schedule` every
    flight scheduled to leave in [start - 2 hours, end) (more is ignored); when a scheduled flight
    left comes from `departures`.
    """
    import numpy as np
    import pandas as pd

    grid = grid_of(start, end)
    dep_delay = departures["dep_delay"]
    measures = {
        "left": dep_delay.notna().to_numpy(dtype="float64"),
        "cancelled": dep_delay.isna().to_numpy(dtype="float64"),
        "late": (dep_delay >= late_minutes).to_numpy(dtype="float64"),
        "delay": dep_delay.fillna(0).to_numpy(),
    }
    windows = {"2h": DEPARTURE_WINDOW_HOURS, "reach": DEPARTURE_REACH // STEP}
    names, sums = _trailing_sums(_keys(departures, key), departures["departed_at"], measures, grid, windows)
    columns = [key, "event_timestamp", *DEPARTURE_FEATURES]
    if not len(names):
        return _typed(pd.DataFrame(columns=columns), key, DEPARTURE_FEATURES, "departures_as_of_unix")
    recent = sums["2h"]
    scheduled, waiting, mean_wait = _waiting(schedule, departures, key, names, grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        data = {
            "n_departures_2h": recent["left"],
            "n_cancelled_2h": recent["cancelled"],
            "mean_dep_delay_2h": np.where(recent["left"] > 0, recent["delay"] / recent["left"], np.nan),
            "late_departure_share_2h": np.where(recent["left"] > 0, recent["late"] / recent["left"], np.nan),
            "n_waiting_2h": waiting,
            "waiting_share_2h": np.where(scheduled > 0, waiting / scheduled, np.nan),
            "mean_wait_2h": mean_wait,
        }
    active = (sums["reach"]["left"] + sums["reach"]["cancelled"]) > 0
    return _typed(_rows(key, names, grid, data, active), key, DEPARTURE_FEATURES, "departures_as_of_unix")


def _waiting(
    schedule: pd.DataFrame, departures: pd.DataFrame, key: str, names: np.ndarray, grid: pd.DatetimeIndex
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each key of `names` and grid time g, of the flights scheduled in [g - 2h, g): how many,
    how many had not left (nor been cancelled) by g, and the mean minutes those had waited past
    their scheduled departure at g, 0 when none waits (keys x grid arrays).

    A flight is scheduled in [g - 2h, g) from the first grid time after its scheduled departure
    until the first grid time after it is 2 hours old, and waits until the first grid time after
    it left (or was cancelled), whichever comes first: each is a +1 when it starts and a -1 when
    it ends, summed from the schedule's start, so every flight whose start is counted is counted
    whole.
    """
    import numpy as np
    import pandas as pd

    window = pd.Timedelta(hours=DEPARTURE_WINDOW_HOURS)
    flights = schedule.loc[schedule["sched_dep_at"] >= grid[0] - STEP - window]
    sched = flights["sched_dep_at"]
    left = flights["flight_id"].map(departures.drop_duplicates("flight_id").set_index("flight_id")["departed_at"])
    out_of_window = sched + window
    # An early departure never waits; one not known to have left (NaN) waits until it leaves the window.
    left = left.where(left.isna() | (left > sched), sched)
    stopped_waiting = left.where(left < out_of_window, out_of_window)
    # Whole minutes from the grid's start (schedules are to the minute): sums of integers, exact,
    # so that a day's build and an hour's give the same wait to the last bit.
    minutes = ((sched - grid[0]) / MINUTE).to_numpy()
    keys = _keys(flights, key)
    ones = np.ones(len(flights))
    events = pd.DataFrame(
        {
            "key": pd.concat([keys, keys, keys, keys], ignore_index=True),
            "at": pd.concat([sched, out_of_window, sched, stopped_waiting], ignore_index=True),
        }
    )
    zero = np.zeros(len(flights))
    measures = {
        "scheduled": np.concatenate([ones, -ones, zero, zero]),
        "waiting": np.concatenate([zero, zero, ones, -ones]),
        "waited": np.concatenate([zero, zero, minutes, -minutes]),
    }
    width = len(grid) + DEPARTURE_WINDOW_HOURS + 2  # back to the first flight that may count
    found, sums = _trailing_sums(events["key"], events["at"], measures, grid, {"all": width})
    shape = (len(names), len(grid))
    result = {measure: np.zeros(shape) for measure in measures}
    if len(found):
        rows = np.searchsorted(names, found)
        known = (rows < len(names)) & (names[np.minimum(rows, len(names) - 1)] == found)
        for measure in measures:
            result[measure][rows[known]] = sums["all"][measure][known]
    waiting = np.rint(result["waiting"])
    at = ((grid - grid[0]) / MINUTE).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_wait = np.where(waiting > 0, (at * waiting - result["waited"]) / waiting, 0.0)
    return result["scheduled"], waiting, mean_wait


def _keys(frame: pd.DataFrame, key: str) -> pd.Series:
    return carrier_origin_of(frame) if key == "carrier_origin" else frame[key]


def grid_of(start: datetime, end: datetime) -> pd.DatetimeIndex:
    """The grid times of the rows an interval [start, end) of data yields: (start, end]."""
    import pandas as pd

    return pd.date_range(pd.Timestamp(start).floor(STEP), pd.Timestamp(end), freq=STEP, inclusive="right")


def aircraft_departure_features(
    departures: pd.DataFrame, outcomes: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Each aircraft's departures, and their outcomes, as rows stamped at the first grid time after
    they were known, for the rows stamped in (start, end]; of two events in one hour, the later."""
    import numpy as np
    import pandas as pd

    left = departures.dropna(subset=["tailnum"]).sort_values("departed_at", kind="stable")
    left = left.assign(stamp=left["departed_at"].dt.floor(STEP) + STEP)
    done = outcomes.dropna(subset=["tailnum"])
    done = done.assign(stamp=done["outcome_at"].dt.floor(STEP) + STEP).sort_values("stamp", kind="stable")
    # An outcome is the aircraft's news only while its flight is the latest departure known: a
    # cancelled flight's outcome (when it was due) may come after the aircraft's next departure.
    latest = pd.merge_asof(
        done[["stamp", "tailnum", "flight_id"]].reset_index(),
        left[["stamp", "tailnum", "flight_id", "departed_at"]].astype({"tailnum": "object"}),
        on="stamp",
        by="tailnum",
        suffixes=("", "_latest"),
    ).set_index("index")
    latest = latest[latest["flight_id"] == latest["flight_id_latest"]]  # its departure, as left says
    done = done.loc[latest.index]
    events = pd.DataFrame(
        {
            "tailnum": pd.concat([left["tailnum"], done["tailnum"]], ignore_index=True).astype(str),
            "known_at": pd.concat([left["departed_at"], done["outcome_at"]], ignore_index=True),
            "previous_dep_delay": pd.concat([left["dep_delay"], done["dep_delay"]], ignore_index=True),
            "departed_at": pd.concat([left["departed_at"], latest["departed_at"]], ignore_index=True),
            "previous_arr_delay": np.concatenate([np.full(len(left), np.nan), done["arr_delay"].to_numpy("float64")]),
            "previous_in_air": np.concatenate([np.ones(len(left)), np.zeros(len(done))]).astype("int64"),
        }
    )
    events["event_timestamp"] = events["known_at"].dt.floor(STEP) + STEP
    inside = (events["event_timestamp"] > pd.Timestamp(start)) & (events["event_timestamp"] <= pd.Timestamp(end))
    rows = events[inside].sort_values(["event_timestamp", "known_at"], kind="stable")
    rows = rows.drop_duplicates(["tailnum", "event_timestamp"], keep="last").drop(columns="known_at")
    rows["previous_dep_delay"] = rows["previous_dep_delay"].astype("float64")
    rows["previous_departed_at_unix"] = _unix_seconds(pd.to_datetime(rows.pop("departed_at"), utc=True))
    rows["event_timestamp"] = pd.to_datetime(rows["event_timestamp"], utc=True)
    columns = ["tailnum", "event_timestamp", *AIRCRAFT_DEPARTURE_FEATURES, "previous_departed_at_unix"]
    return rows.sort_values(["event_timestamp", "tailnum"])[columns].reset_index(drop=True)


def request_time_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The features that depend on when the prediction is made, from the request's time
    (`event_timestamp`) and the served features: hours since the aircraft's previous departure."""
    import pandas as pd

    column = REQUEST_TIME[SINCE_PREVIOUS]
    if column not in frame:
        return frame
    at = (frame["event_timestamp"] - pd.Timestamp(EPOCH)) // pd.Timedelta(seconds=1)
    return frame.assign(**{SINCE_PREVIOUS: (at - frame[column].astype("float64")) / 3600})


def _trailing_sums(
    keys: pd.Series,
    known_at: pd.Series,
    measures: dict[str, np.ndarray],
    grid: pd.DatetimeIndex,
    windows: dict[str, int],
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """For every key and grid time g, each measure summed over the events known in
    [g - width * STEP, g), for each window's width in steps: (key names, {window: {measure:
    array of keys x grid}}). No key names when the grid is empty or no event is in reach."""
    import numpy as np
    import pandas as pd

    if grid.empty:
        return np.array([]), {}
    step = pd.Timedelta(STEP)
    ticks = pd.date_range(grid[0] - step * (max(windows.values()) - 1), grid[-1], freq=step)
    bucket = known_at.dt.floor(step) + step  # the first grid time after the event
    keep = ((bucket >= ticks[0]) & (bucket <= ticks[-1])).to_numpy()
    if not keep.any():
        return np.array([]), {}
    names, row = np.unique(keys.to_numpy()[keep].astype(str), return_inverse=True)
    column = ((bucket[keep] - ticks[0]) // step).to_numpy() + 1  # column 0 is the zero before the first tick
    at = np.arange(len(ticks) - len(grid), len(ticks)) + 1  # grid times as cumulative columns
    sums: dict[str, dict[str, np.ndarray]] = {window: {} for window in windows}
    for measure, values in measures.items():
        dense = np.zeros((len(names), len(ticks) + 1))
        np.add.at(dense, (row, column), values[keep])
        cumulative = dense.cumsum(axis=1)
        for window, width in windows.items():
            sums[window][measure] = cumulative[:, at] - cumulative[:, at - width]
    return names, sums


def _rows(
    key: str, names: np.ndarray, grid: pd.DatetimeIndex, data: dict[str, np.ndarray], active: np.ndarray
) -> pd.DataFrame:
    """One row per (key, grid time) where `active`, sorted by time then key."""
    import numpy as np
    import pandas as pd

    key_index, grid_index = np.nonzero(active)
    frame = pd.DataFrame(
        {
            key: names[key_index],
            "event_timestamp": grid[grid_index],
            **{name: values[key_index, grid_index] for name, values in data.items()},
        }
    )
    return frame.sort_values(["event_timestamp", key]).reset_index(drop=True)


def _typed(frame: pd.DataFrame, key: str, names: list[str], stamp: str) -> pd.DataFrame:
    """Counts (`n_*`) as integers, other statistics as floats, and the row's time as `stamp`."""
    import pandas as pd

    types = {name: ("int64" if name.startswith("n_") else "float64") for name in names}
    frame = frame.astype({key: "object", **types})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame[stamp] = _unix_seconds(frame["event_timestamp"])
    return frame


def _unix_seconds(stamps: pd.Series) -> pd.Series:
    """A row's own timestamp as a feature, so that consumers can check it is not in the future."""
    import pandas as pd

    return ((stamps - pd.Timestamp(EPOCH)) // pd.Timedelta(seconds=1)).astype("int64")
