"""The production feature store variant on the machine's real PostgreSQL (SQL registry) and
Redis (online store): apply, materialize a real day, serve it.

Uses a throw-away PostgreSQL database and Redis database 15, both emptied afterwards.
Override the servers with MLOPS_TEST_POSTGRES (a libpq URL) and MLOPS_TEST_REDIS.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis

from include.flights import features, pipeline
from include.flights.source import Nycflights13Source
from include.mlops.feature_store import load_store
from include.mlops.lake import Interval
from include.mlops.settings import Settings
from tests.support.online import serve

POSTGRES = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT, REDIS_DB = os.environ.get("MLOPS_TEST_REDIS", "127.0.0.1:6379:15").split(":")
DAY = Interval(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Settings]:
    database = f"mlops_feast_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    online = redis.Redis(host=REDIS_HOST, port=int(REDIS_PORT), db=int(REDIS_DB))
    online.flushdb()
    registry = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{database}"
    try:
        yield Settings(
            profile="production",
            state_dir=tmp_path / "state",
            feast_registry_url=registry,
            feast_redis=f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}",
        )
    finally:
        online.flushdb()
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_production_store_registers_in_postgres_and_serves_from_redis(
    production: Settings, source: Nycflights13Source
) -> None:
    pipeline.validate_batches(production, pipeline.ingest(production, DAY, source))
    pipeline.build_features(production, DAY)
    assert pipeline.apply_definitions(production)
    assert pipeline.apply_definitions(production) == []  # unchanged definitions are not re-applied
    pipeline.materialize(production, DAY)

    database = production.feast_registry_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES.rsplit("/", 1)[0] + f"/{database}") as registry:
        names = {name for (name,) in registry.execute("SELECT feature_view_name FROM feature_views")}
    assert names == {"weather", "aircraft", "aircraft_departures", *features.OPERATIONS_KEYS, *features.DEPARTURE_KEYS}
    online = redis.Redis(host=REDIS_HOST, port=int(REDIS_PORT), db=int(REDIS_DB))
    assert online.dbsize() > 100

    flights = source.flight_outcomes(DAY.start, DAY.end)
    served = serve(load_store(production), flights)
    assert served["route_ops__n_flights_7d"].notna().all()
    assert served["weather__temp"].notna().all()


def test_production_profile_without_servers_is_refused() -> None:
    with pytest.raises(ValueError, match="MLOPS_FEAST_REGISTRY_URL"):
        Settings.from_env({"MLOPS_PROFILE": "production"})
