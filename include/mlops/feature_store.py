"""Feast helpers: build the store for a profile, apply definitions only when they changed,
materialize an interval, name and register feature services, point-in-time training sets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from include.mlops.settings import FEATURE_REPO, Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore, FeatureView

log = logging.getLogger(__name__)

CONFIG_FILES = {
    "embedded": FEATURE_REPO / "feature_store.yaml",
    "production": FEATURE_REPO / "feature_store.production.yaml",
}


def load_store(settings: Settings) -> FeatureStore:
    """The feature store of the settings' profile, rooted at the state folder."""
    import yaml
    from feast import FeatureStore, RepoConfig

    text = CONFIG_FILES[settings.profile].read_text()
    values = {
        "MLOPS_FEAST_REGISTRY_URL": settings.feast_registry_url or "",
        "MLOPS_FEAST_REDIS": settings.feast_redis or "",
    }
    config = RepoConfig(**yaml.safe_load(Template(text).substitute(values)))
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    config.repo_path = Path(settings.state_dir)
    return FeatureStore(repo_path=str(settings.state_dir), config=config)


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
        data_sources=[view.batch_source for view in views],
        feature_views=views,
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=entities,
        feature_services=services,
        permissions=[],
    )
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

    def definition(value: object) -> object:
        if isinstance(value, Message) and "meta" in value.DESCRIPTOR.fields_by_name:
            stripped = type(value)()
            stripped.CopyFrom(value)
            stripped.ClearField("meta")
            return stripped
        return value

    return (
        any(definition(p.val_existing) != definition(p.val_declared) for p in diff.feast_object_property_diffs)
        or not diff.feast_object_property_diffs
    )


def anchor_source(view: FeatureView, root: Path) -> FeatureView:
    """A copy of `view` whose relative file source path is resolved against `root`.

    Feast's DuckDB offline store reads a file source's path as given, relative to the
    working directory; anchoring makes the registry hold the state folder's real path.
    """
    import copy

    from feast import FileSource

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
