"""What the flights domain's raw tables must hold (the contract for any `FlightSource`)."""

from __future__ import annotations

from include.mlops.validation import Column, TableSchema

ORIGINS = frozenset({"EWR", "JFK", "LGA"})
_CODE = Column("string", nullable=False)
_MINUTES = Column("float", min=-180, max=24 * 60)
# Which flight a row is about: the columns every flight table starts with.
_FLIGHT = {
    "flight_id": _CODE,
    "carrier": _CODE,
    "flight": Column("int", nullable=False, min=1, max=9999),
    "tailnum": Column("string", max_null_share=0.6),
    "origin": Column("string", nullable=False, allowed=ORIGINS),
}

# What a flight was scheduled to do: the schedule's columns, with which outcomes start too.
_SCHEDULED = {
    **_FLIGHT,
    "dest": _CODE,
    "distance": Column("float", nullable=False, min=1, max=10_000),
    "sched_dep_at": Column("timestamp", nullable=False),
    # The same departure on the origin's wall clock: calendar features come from it.
    "sched_dep_local": Column("wall_clock", nullable=False),
    "sched_arr_at": Column("timestamp", nullable=False),
}

FLIGHT_OUTCOMES = TableSchema(
    name="flight_outcomes",
    columns={
        **_SCHEDULED,
        "dep_delay": _MINUTES,
        # Real storm days cancel over half the flights; a batch above 90% is a broken feed.
        "arr_delay": Column("float", min=-180, max=24 * 60, max_null_share=0.9),
        "air_time": Column("float", min=1, max=24 * 60),
        "outcome_at": Column("timestamp", nullable=False),
    },
    key=("flight_id",),
    time_column="outcome_at",
)

# What was scheduled: the departure board's flights that have not left yet come from it.
FLIGHT_SCHEDULE = TableSchema(
    name="flight_schedule",
    columns=_SCHEDULED,
    key=("flight_id",),
    time_column="sched_dep_at",
)

DEPARTURES = TableSchema(
    name="departures",
    columns={
        **_FLIGHT,
        "sched_dep_at": Column("timestamp", nullable=False),
        # Null for a cancelled flight; a batch above 90% null is a broken feed.
        "dep_delay": Column("float", min=-180, max=24 * 60, max_null_share=0.9),
        "departed_at": Column("timestamp", nullable=False),
    },
    key=("flight_id",),
    time_column="departed_at",
)

WEATHER = TableSchema(
    name="weather",
    columns={
        "origin": Column("string", nullable=False, allowed=ORIGINS),
        "hour_at": Column("timestamp", nullable=False),  # the hour observed starts here
        "observed_at": Column("timestamp", nullable=False),  # published: when the hour is over
        "temp": Column("float", min=-60, max=130, max_null_share=0.2),
        "dewp": Column("float", min=-80, max=100, max_null_share=0.2),
        "humid": Column("float", min=0, max=100, max_null_share=0.2),
        "wind_dir": Column("float", min=0, max=360, max_null_share=0.5),
        "wind_speed": Column("float", min=0, max=200, max_null_share=0.2),
        "wind_gust": Column("float", min=0, max=250),
        "precip": Column("float", min=0, max=20, max_null_share=0.2),
        "pressure": Column("float", min=850, max=1100, max_null_share=0.9),
        "visib": Column("float", min=0, max=100, max_null_share=0.2),
    },
    key=("origin", "hour_at"),
    time_column="hour_at",
)

PLANES = TableSchema(
    name="planes",
    columns={
        "tailnum": _CODE,
        "year": Column("float", min=1900, max=2100),
        "type": Column("string"),
        "manufacturer": Column("string"),
        "model": Column("string"),
        "engines": Column("float", min=0, max=8),
        "seats": Column("float", min=1, max=1000),
        "speed": Column("float", min=0, max=1000),
        "engine": Column("string"),
    },
    key=("tailnum",),
)
