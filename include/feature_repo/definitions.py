"""Feast definitions of the flights features; see include/flights/features.py for their meaning.

Every view that changes over time has a push source: `feature_pipeline` writes an interval's rows
to the offline store (the Parquet files of the batch source) and pushes the latest of them to the
online store, the same rows from the same code. Source paths are relative to the state folder;
`include.mlops.feature_store` anchors them there when it applies the definitions.
"""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

from include.flights import features

# Departure airport (EWR, JFK, LGA).
origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING, description="Departure airport")

# Airline.
carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING, description="Airline code")

# Origin and destination airports, e.g. "JFK-LAX".
route = Entity(name="route", join_keys=["route"], value_type=ValueType.STRING, description="Origin-destination pair")

# An airline at a departure airport, e.g. "UA-EWR".
carrier_origin = Entity(
    name="carrier_origin",
    join_keys=["carrier_origin"],
    value_type=ValueType.STRING,
    description="Airline at a departure airport",
)

# Aircraft by tail number.
aircraft = Entity(
    name="aircraft", join_keys=["tailnum"], value_type=ValueType.STRING, description="Aircraft tail number"
)

_WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
_OPERATIONS = [
    Field(name=f"{stat}_{window}", dtype=Int64 if stat == "n_flights" else Float64)
    for window in ("1h", "24h", "7d")
    for stat in ("n_flights", "late_share", "mean_arr_delay")
] + [Field(name="stats_as_of_unix", dtype=Int64)]
_DEPARTURES = [
    Field(name="n_departures_2h", dtype=Int64),
    Field(name="n_cancelled_2h", dtype=Int64),
    Field(name="mean_dep_delay_2h", dtype=Float64),
    Field(name="late_departure_share_2h", dtype=Float64),
    Field(name="n_waiting_2h", dtype=Int64),
    Field(name="waiting_share_2h", dtype=Float64),
    Field(name="mean_wait_2h", dtype=Float64),
    Field(name="departures_as_of_unix", dtype=Int64),
]


def _source(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=f"lake/features/{name}/*.parquet",
        timestamp_field="event_timestamp",
        file_format=ParquetFormat(),
    )


def _pushed(name: str) -> PushSource:
    """The push source of a view (`<view>_push`), backed by its offline files."""
    return PushSource(name=f"{name}_push", batch_source=_source(name))


# Latest hourly observation at the origin, at most three hours old.
weather = FeatureView(
    name="weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[Field(name=name, dtype=Float64) for name in _WEATHER] + [Field(name="observed_at_unix", dtype=Int64)],
    source=_pushed("weather"),
)

# Static aircraft attributes (no TTL).
aircraft_attributes = FeatureView(
    name="aircraft",
    entities=[aircraft],
    ttl=timedelta(0),
    schema=[
        Field(name="plane_year", dtype=Float64),
        Field(name="seats", dtype=Float64),
        Field(name="engines", dtype=Float64),
        Field(name="engine", dtype=String),
    ],
    source=_source("aircraft"),
)

# Trailing delay statistics by departure airport, hourly.
origin_ops = FeatureView(
    name="origin_ops", entities=[origin], ttl=timedelta(hours=1), schema=_OPERATIONS, source=_pushed("origin_ops")
)

# Trailing delay statistics by airline, hourly.
carrier_ops = FeatureView(
    name="carrier_ops", entities=[carrier], ttl=timedelta(hours=1), schema=_OPERATIONS, source=_pushed("carrier_ops")
)

# Trailing delay statistics by route, hourly.
route_ops = FeatureView(
    name="route_ops", entities=[route], ttl=timedelta(hours=1), schema=_OPERATIONS, source=_pushed("route_ops")
)

# The departure board of the last two hours by departure airport, hourly.
origin_departures = FeatureView(
    name="origin_departures",
    entities=[origin],
    ttl=timedelta(hours=1),
    schema=_DEPARTURES,
    source=_pushed("origin_departures"),
)

# The departure board of the last two hours by airline at its departure airport, hourly.
carrier_departures = FeatureView(
    name="carrier_departures",
    entities=[carrier_origin],
    ttl=timedelta(hours=1),
    schema=_DEPARTURES,
    source=_pushed("carrier_departures"),
)

# The aircraft's latest departure from New York and, once known, its outcome, for 24 hours.
aircraft_departures = FeatureView(
    name="aircraft_departures",
    entities=[aircraft],
    ttl=features.AIRCRAFT_DEPARTURE_TTL,
    schema=[
        Field(name="previous_dep_delay", dtype=Float64),
        Field(name="previous_arr_delay", dtype=Float64),
        Field(name="previous_in_air", dtype=Int64),
        Field(name="previous_departed_at_unix", dtype=Int64),
    ],
    source=_pushed("aircraft_departures"),
)

ENTITIES = [origin, carrier, route, carrier_origin, aircraft]
FEATURE_VIEWS = [
    weather, aircraft_attributes, origin_ops, carrier_ops, route_ops, origin_departures, carrier_departures,
    aircraft_departures,
]  # fmt: skip
