"""Feast's DuckDB offline store with a point-in-time join written as DuckDB ASOF JOINs.

Feast 0.67's DuckDB store joins each feature view to the entity rows on the join keys and
`feature_ts <= entity_ts`, then keeps the latest match per row: a range join whose cost grows
with (entity rows per key) x (feature rows per key). On a year of flights that is 18.6 s against
2.2 s for the same answer by ASOF JOIN (`make bench`). This store answers
`get_historical_features` with one ASOF LEFT JOIN per feature view, TTL applied, and inherits
everything else (materialization, pulls) from the DuckDB store unchanged.

It handles what this project asks of it: a pandas entity frame with an `event_timestamp`
column, Parquet file sources without field mappings or created-timestamp columns, and no
on-demand feature views. Any other request goes to the DuckDB store's own implementation.

Select it in feature_store.yaml with
`offline_store: {type: include.mlops.asof_offline_store.AsofDuckDBOfflineStore}`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from pydantic import StrictStr

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig

TIMESTAMP = "event_timestamp"
_ROW = "__entity_row"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: StrictStr = "include.mlops.asof_offline_store.AsofDuckDBOfflineStore"


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if not _supported(feature_views, feature_refs, entity_df):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        query = _asof_query(config, feature_views, feature_refs, full_feature_names)
        features = [ref.split(":", 1)[1] for ref in feature_refs]
        metadata = RetrievalMetadata(
            features=features,
            keys=[c for c in entity_df.columns if c != TIMESTAMP],
            min_event_timestamp=entity_df[TIMESTAMP].min().to_pydatetime(),
            max_event_timestamp=entity_df[TIMESTAMP].max().to_pydatetime(),
        )
        return AsofRetrievalJob(lambda: _run(query, entity_df), full_feature_names, metadata)


class AsofRetrievalJob(RetrievalJob):
    """Runs the ASOF query when the result is asked for."""

    def __init__(self, run: Callable[[], pa.Table], full_feature_names: bool, metadata: RetrievalMetadata) -> None:
        self._run = run
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list:
        return []

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._run()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._run().to_pandas()


def _supported(feature_views: list[FeatureView], feature_refs: list[str], entity_df: pd.DataFrame | str) -> bool:
    if not isinstance(entity_df, pd.DataFrame) or TIMESTAMP not in entity_df.columns:
        return False
    if not isinstance(entity_df[TIMESTAMP].dtype, pd.DatetimeTZDtype):
        return False
    names = {view.projection.name_to_use() for view in feature_views}
    if any(ref.split(":", 1)[0] not in names for ref in feature_refs):
        return False  # an on-demand feature view
    return all(
        isinstance(view.batch_source, FileSource)
        and not view.batch_source.field_mapping
        and not view.batch_source.created_timestamp_column
        and "://" not in view.batch_source.path
        for view in feature_views
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _asof_query(config: RepoConfig, views: list[FeatureView], refs: list[str], full_names: bool) -> str:
    """One ASOF LEFT JOIN per view: the latest feature row at or before each entity row's time."""
    selected, joins = [], []
    for i, view in enumerate(views):
        alias, name = f"f{i}", view.projection.name_to_use()
        wanted = [ref.split(":", 1)[1] for ref in refs if ref.split(":", 1)[0] == name]
        if not wanted:
            continue
        path = FileSource.get_uri_for_file_path(config.repo_path, view.batch_source.path)
        timestamp = f"{alias}.{_quote(view.batch_source.timestamp_field)}"
        keys = [
            (column.name, view.projection.join_key_map.get(column.name, column.name)) for column in view.entity_columns
        ]
        on = " AND ".join(f"e.{_quote(entity)} = {alias}.{_quote(feature)}" for feature, entity in keys)
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{path}') AS {alias} "
            f"ON {on + ' AND ' if on else ''}e.{TIMESTAMP} >= {timestamp}"
        )
        fresh = "TRUE"
        if view.ttl and view.ttl > timedelta(0):
            fresh = f"{timestamp} >= e.{TIMESTAMP} - INTERVAL {int(view.ttl.total_seconds())} SECOND"
        for feature in wanted:
            label = f"{name}__{feature}" if full_names else feature
            selected.append(f"CASE WHEN {fresh} THEN {alias}.{_quote(feature)} END AS {_quote(label)}")
    return (
        f"SELECT e.* EXCLUDE ({_ROW}){''.join(', ' + s for s in selected)} "
        f"FROM entities AS e {' '.join(joins)} ORDER BY e.{_ROW}"
    )


def _run(query: str, entity_df: pd.DataFrame) -> pa.Table:
    import duckdb

    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entities", entity_df.assign(**{_ROW: range(len(entity_df))}))
        return connection.sql(query).to_arrow_table()
