"""Feast helpers: build the store for a profile, apply definitions only when they changed,
materialize an interval, name and register feature services, point-in-time training sets.

Both profiles keep Feast's SQL registry (SQLite in the state folder, PostgreSQL in production):
a write changes its own object's row in a transaction, so processes writing at once (a
backfill's materialization beside the daily run's, a training run registering its feature
service) need no lock of the project's (docs/decisions/0005-feast-sql-registry.md).

Importing this module does not import Feast (a task that finds nothing to do should not pay for it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from include.mlops.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore, FeatureView

log = logging.getLogger(__name__)

CONFIG_FILES = {"embedded": "feature_store.yaml", "production": "feature_store.production.yaml"}


def config_file(settings: Settings) -> Path:
    """The Feast configuration of the settings' profile, in the domain's feature repository."""
    return settings.feature_repo / CONFIG_FILES[settings.profile]


def config_values(settings: Settings) -> dict[str, object]:
    """The profile's Feast configuration as a mapping, its `${...}` names replaced by the settings'
    values. (Feast's own `${VAR}` expansion reads the process environment only, and these values
    may come from an Airflow connection or a test's settings.)"""
    import yaml

    values = {
        "MLOPS_FEAST_DIR": str(settings.feast_dir.resolve()),
        "MLOPS_FEAST_REGISTRY_URL": settings.feast_registry_url or "",
        "MLOPS_FEAST_REDIS": settings.feast_redis or "",
    }
    return yaml.safe_load(Template(config_file(settings).read_text()).substitute(values))


def load_store(settings: Settings, **overrides: object) -> FeatureStore:
    """The feature store of the settings' profile, rooted at the state folder; `overrides` replace
    top-level sections of its configuration (a benchmark's other offline store)."""
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(**config_values(settings) | overrides)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    config.repo_path = Path(settings.state_dir)
    store = FeatureStore(repo_path=str(settings.state_dir), config=config)
    if (old := settings.feast_dir / FILE_REGISTRY).exists():
        import_file_registry(store, old)
    return store


FILE_REGISTRY = "registry.db"  # the embedded profile's registry file before the SQL registry


def import_file_registry(store: FeatureStore, path: Path) -> None:
    """Register what a Feast file registry at `path` holds (entities, feature views with their
    materialized intervals, feature services: model versions' too) in `store`'s registry, then
    rename the file `*.imported`, so that a state folder made before the SQL registry keeps its
    model versions' feature services. Objects the registry already has are left as they are."""
    from feast import Entity, FeatureService, FeatureView
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    registry = RegistryProto.FromString(path.read_bytes())
    project = store.project
    registered = [*store.list_entities(), *store.list_feature_views(), *store.list_feature_services()]
    known = {(type(o), o.name) for o in registered}
    objects = [
        *(Entity.from_proto(p) for p in registry.entities if p.spec.project == project),
        *(FeatureView.from_proto(p) for p in registry.feature_views if p.spec.project == project),
        *(FeatureService.from_proto(p) for p in registry.feature_services if p.spec.project == project),
    ]
    if missing := [o for o in objects if (type(o), o.name) not in known]:
        store.apply(missing)
    log.info("Imported the file registry %s: %s", path, ", ".join(o.name for o in missing) or "nothing new")
    with contextlib.suppress(FileNotFoundError):  # another process imported it at the same time
        path.replace(path.with_name(path.name + ".imported"))


APPLIED = "applied-definitions.sha256"  # in the Feast folder: the fingerprint last applied


def definitions_fingerprint(settings: Settings, sources: Sequence[Path]) -> str:
    """What a set of definitions is made of: their source files, Feast's version, the profile's
    store configuration and the state folder their sources are anchored in. A task compares it
    with the one last applied (`settings.feast_dir / APPLIED`) before it imports Feast at all."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    parts = [path.read_bytes() for path in sources] + [
        version("feast").encode(),
        config_file(settings).read_bytes(),
        str(Path(settings.state_dir).resolve()).encode(),
        (settings.feast_registry_url or "").encode(),
    ]
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def apply_if_changed(store: FeatureStore, objects: Sequence[object]) -> list[str]:
    """Register `objects` when any differs from the registry; return what was created or updated.

    Objects registered by others (feature services of model versions) are left alone.
    """
    from feast.diff.registry_diff import TransitionType
    from feast.entity import Entity
    from feast.feature_service import FeatureService
    from feast.feature_view import FeatureView
    from feast.repo_contents import RepoContents

    entities = [o for o in objects if isinstance(o, Entity)]
    views = [anchor_source(o, store.repo_path) for o in objects if isinstance(o, FeatureView)]
    services = [o for o in objects if isinstance(o, FeatureService)]
    desired = RepoContents(
        projects=[],
        data_sources=[view.batch_source for view in views] + [v.stream_source for v in views if v.stream_source],
        feature_views=views,
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=entities,
        feature_services=services,
        permissions=[],
    )
    store.refresh_registry()  # compare with the registry as it is now, not a cached copy
    registry_diff, _, _ = store.plan(desired)
    changed = [
        f"{diff.feast_object_type.value} {diff.name}"
        for diff in registry_diff.feast_object_diffs
        if diff.transition_type == TransitionType.CREATE
        or (diff.transition_type == TransitionType.UPDATE and _differs(diff))
    ]
    if changed:
        log.info("Applying changed Feast definitions: %s", ", ".join(changed))
        store.apply([*entities, *views, *services])
    else:
        log.info("Feast definitions unchanged; nothing applied")
    return changed


def _differs(diff: object) -> bool:
    """Whether an update changes a definition, not only the bookkeeping timestamps a registry keeps."""
    from google.protobuf.message import Message

    def strip(message: Message) -> None:  # the bookkeeping `meta`, at any depth (a push source's batch source)
        if "meta" in message.DESCRIPTOR.fields_by_name:
            message.ClearField("meta")
        for _, value in message.ListFields():
            if isinstance(value, Message):
                strip(value)

    def definition(value: object) -> object:
        if isinstance(value, Message):
            stripped = type(value)()
            stripped.CopyFrom(value)
            strip(stripped)
            return stripped
        return value

    return (
        any(definition(p.val_existing) != definition(p.val_declared) for p in diff.feast_object_property_diffs)
        or not diff.feast_object_property_diffs
    )


def anchor_source(view: FeatureView, root: Path) -> FeatureView:
    """A copy of `view` whose relative file source path is resolved against `root`.

    Feast's DuckDB offline store reads a file source's path as given, relative to the
    working directory; anchoring makes the registry hold the state folder's real path. A push
    source gets the anchored file source as its batch source too.
    """
    import copy

    from feast import FileSource, PushSource

    source = view.batch_source
    if not isinstance(source, FileSource) or "://" in source.path or Path(source.path).is_absolute():
        return view
    anchored = copy.copy(view)
    anchored.batch_source = FileSource(
        name=source.name,
        path=str(Path(root) / source.path),
        timestamp_field=source.timestamp_field,
        file_format=source.file_format,
        description=source.description,
    )
    if isinstance(view.stream_source, PushSource):
        pushed = view.stream_source
        anchored.stream_source = PushSource(
            name=pushed.name, batch_source=anchored.batch_source, description=pushed.description
        )
    return anchored


def materialize(store: FeatureStore, start: datetime, end: datetime, views: Sequence[str]) -> None:
    """Load the offline rows stamped in [start, end) of `views` into the online store."""
    log.info("Materializing %s over [%s, %s)", ", ".join(views), start.isoformat(), end.isoformat())
    # Feast's window includes its end; a row stamped at `end` belongs to the next interval.
    store.materialize(start_date=start, end_date=end - timedelta(microseconds=1), feature_views=list(views))


def feature_service_name(model: str, version: int | str) -> str:
    """The one feature service of a model version: `<model>_v<version>`."""
    if not model or not str(version).isdigit():
        raise ValueError(f"a feature service needs a model name and a numeric version, got {model!r}, {version!r}")
    return f"{model}_v{version}"


def model_feature_service(store: FeatureStore, tracking_uri: str, model: str, version: int | str) -> FeatureService:
    """The feature service a registered model version was trained with, by Feast's MLflow
    integration: its model resolver reads the version's `feast.feature_service` tag (set when the
    version is registered) from MLflow's registry and checks the service against Feast's registry
    (a fresh read, not its cache).

    The resolver is used on its own rather than through `mlflow: enabled` in feature_store.yaml:
    enabled, every store opens an MLflow client on its first read, materialization or apply (half
    a second in a feature task, which never needs one), and the training run records its training
    set itself (mlflow.data, with digests), which is what Feast's auto-logging would add.

    Raises `FeastMlflowModelResolutionError`, naming the model, when the version has no such tag or
    the service is not registered."""
    import mlflow
    from feast.mlflow_integration.model_resolver import FeastMlflowModelResolver

    resolver = FeastMlflowModelResolver(store, mlflow, mlflow.MlflowClient(tracking_uri=tracking_uri))
    return store.get_feature_service(resolver.resolve(f"models:/{model}/{version}"))


def register_feature_service(
    store: FeatureStore, model: str, version: int | str, views: Sequence[FeatureView], description: str = ""
) -> FeatureService:
    """Create (or replace) the feature service that pins a model version's features."""
    from feast import FeatureService

    service = FeatureService(name=feature_service_name(model, version), features=list(views), description=description)
    store.apply([service])
    return service


def historical_features(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    features: FeatureService | Sequence[str],
) -> pd.DataFrame:
    """Features as of each row's `event_timestamp`, through Feast's point-in-time join.

    Columns are `<view>__<feature>`; row order follows `entity_df`.
    """
    if "event_timestamp" not in entity_df.columns:
        raise ValueError("the entity frame needs an event_timestamp column (the prediction time)")
    if entity_df.empty:
        raise ValueError("the entity frame is empty: nothing to build a training set from")
    order = "_entity_row"
    frame = entity_df.assign(**{order: range(len(entity_df))})
    job = store.get_historical_features(
        entity_df=frame,
        features=features if not isinstance(features, Sequence) else list(features),
        full_feature_names=True,
    )
    result = job.to_df()
    return result.sort_values(order).drop(columns=order).reset_index(drop=True)


class OnlineStoreAheadError(LookupError):
    """The online store holds rows newer than the time a request is served as of."""


def view_ttls(store: FeatureStore, features: FeatureService | Sequence[str]) -> dict[str, timedelta]:
    """The TTL of each feature view `features` reads (a feature service or `view:feature` refs):
    what `online_features` needs, looked up once per feature service and kept by its callers."""
    from feast.feature_service import FeatureService

    if isinstance(features, FeatureService):
        views = [p.name_to_use() for p in features.feature_view_projections]
    else:
        views = list(dict.fromkeys(ref.split(":", 1)[0] for ref in features))
    return {view: store.get_feature_view(view, allow_registry_cache=True).ttl for view in views}


def online_features(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    features: FeatureService | Sequence[str],
    join_keys: Sequence[str],
    ttls: Mapping[str, timedelta],
) -> pd.DataFrame:
    """What the online store serves for each row of `entity_df`, as of its `event_timestamp`.

    The same answer as `historical_features` at that time, provided the online store holds the
    latest rows stamped at or before it: columns `<view>__<feature>` appended, row order kept,
    and a view's features null where its online row is older than the view's TTL (`ttls`, from
    `view_ttls`: Feast's offline join applies the TTL; its online read does not, against the
    request's time). `OnlineStoreAheadError` if the store holds a row stamped after a request's
    time: the past is served by the offline store. Missing join-key values are looked up as
    "unknown".
    """
    import numpy as np
    import pandas as pd

    if entity_df.empty:
        return entity_df.copy()
    keys = entity_df[list(join_keys)]
    rows = keys.astype(object).where(keys.notna(), "unknown")
    response = store.get_online_features(
        features=features if not isinstance(features, Sequence) else list(features),
        entity_rows=rows.to_dict("records"),
        full_feature_names=True,
    ).to_dict(include_event_timestamps=True)
    as_of = ((entity_df["event_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
    served = {}
    for view, ttl in ttls.items():
        for column in [c for c in response if c.startswith(f"{view}__") and not c.endswith("__ts")]:
            stamped = np.asarray(response[f"{column}__ts"], dtype="int64")
            ahead = stamped > as_of
            if ahead.any():
                raise OnlineStoreAheadError(
                    f"the online store holds {view} rows stamped after the request time "
                    f"{pd.Timestamp(as_of[ahead][0], unit='s', tz='UTC').isoformat()}: serve it from the offline store"
                )
            expired = as_of - stamped > ttl.total_seconds() if ttl else np.zeros(len(stamped), dtype=bool)
            served[column] = [None if gone else value for value, gone in zip(response[column], expired, strict=True)]
    return entity_df.join(pd.DataFrame(served, index=entity_df.index))


def disagreeing(served: pd.DataFrame, expected: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per row and column of two frames in the same row order, whether the values differ (numbers
    beyond rounding, or one null and not the other): the training-serving skew of `columns`."""
    import numpy as np
    import pandas as pd

    differs = {}
    for column in columns:
        ours, theirs = served[column].reset_index(drop=True), expected[column].reset_index(drop=True)
        numeric = pd.api.types.is_numeric_dtype(theirs) or pd.api.types.is_numeric_dtype(ours)
        if numeric:
            a, b = pd.to_numeric(ours).astype("float64"), pd.to_numeric(theirs).astype("float64")
            differs[column] = ~np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            differs[column] = ~((ours == theirs) | (ours.isna() & theirs.isna())).to_numpy()
    return pd.DataFrame(differs)
