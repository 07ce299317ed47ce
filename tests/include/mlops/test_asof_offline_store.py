"""The ASOF offline store answers exactly what Feast's own DuckDB store answers, only faster."""

from __future__ import annotations

import copy

import numpy as np
from feast import FeatureStore, FileSource
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

from include.flights import pipeline
from include.mlops.asof_offline_store import AsofDuckDBOfflineStore, AsofRetrievalJob
from include.mlops.feature_store import historical_features, load_store
from include.mlops.settings import Settings
from tests.support.data import BUILT


def feast_duckdb_store(settings: Settings) -> FeatureStore:
    config = load_store(settings).config
    config.offline_config = DuckDBOfflineStoreConfig()
    config._offline_store = None
    assert config.offline_store.type == "duckdb"
    return FeatureStore(repo_path=str(settings.state_dir), config=config)


def test_same_training_set_as_feasts_duckdb_store(built: Settings) -> None:
    entities = pipeline.entity_frame(built, BUILT).sample(2000, random_state=7).reset_index(drop=True)
    refs = pipeline.all_feature_refs()
    ours = historical_features(load_store(built), entities, refs)
    theirs = historical_features(feast_duckdb_store(built), entities, refs)
    assert ours["flight_id"].tolist() == theirs["flight_id"].tolist() == entities["flight_id"].tolist()
    for column in [c for c in theirs.columns if "__" in c]:
        if theirs[column].dtype == object:
            assert ours[column].fillna("").tolist() == theirs[column].fillna("").tolist(), column
        else:
            np.testing.assert_allclose(
                ours[column].astype(float), theirs[column].astype(float), equal_nan=True, err_msg=column
            )
    assert ours["route_ops__n_flights_24h"].notna().mean() > 0.9


def test_asof_join_serves_the_request_and_short_names(built: Settings) -> None:
    entities = pipeline.entity_frame(built, BUILT).head(50)
    job = load_store(built).get_historical_features(
        entity_df=entities, features=["weather:temp", "route_ops:n_flights_7d"]
    )
    assert isinstance(job, AsofRetrievalJob)
    frame = job.to_df()
    assert {"temp", "n_flights_7d"} <= set(frame.columns)
    assert len(frame) == 50


def test_requests_it_does_not_handle_go_to_feasts_own_join(built: Settings) -> None:
    store = load_store(built)
    view = copy.copy(store.get_feature_view("weather"))
    source = view.batch_source
    view.batch_source = FileSource(
        name=source.name,
        path=source.path,
        timestamp_field=source.timestamp_field,
        field_mapping={"temp": "temp"},  # field mappings are left to Feast's own join
        file_format=source.file_format,
    )
    entities = pipeline.entity_frame(built, BUILT).head(20)
    job = AsofDuckDBOfflineStore.get_historical_features(
        store.config, [view], ["weather:temp"], entities, store.registry, store.project
    )
    assert not isinstance(job, AsofRetrievalJob)
    served = job.to_df().sort_values("flight_id")["temp"].to_numpy()
    ours = historical_features(store, entities, ["weather:temp"]).sort_values("flight_id")["weather__temp"]
    np.testing.assert_allclose(served, ours.to_numpy(), equal_nan=True)
