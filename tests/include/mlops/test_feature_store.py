"""Feast helpers: apply only on change, feature services per model version, the embedded layout."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta

import pytest

from include.feature_repo import definitions
from include.flights import pipeline
from include.mlops.feature_store import (
    APPLIED,
    FILE_REGISTRY,
    apply_if_changed,
    definitions_fingerprint,
    feature_service_name,
    load_store,
    register_feature_service,
)
from include.mlops.settings import PROJECT_ROOT, Settings


def test_definitions_are_applied_only_when_they_change(settings: Settings) -> None:
    store = load_store(settings)
    objects = [*definitions.ENTITIES, *definitions.FEATURE_VIEWS]
    first = apply_if_changed(store, objects)
    assert "feature view route_ops" in first
    assert apply_if_changed(load_store(settings), objects) == []

    longer = copy.copy(definitions.weather)
    longer.ttl = timedelta(hours=6)
    assert apply_if_changed(load_store(settings), [*definitions.ENTITIES, longer]) == ["feature view weather"]
    assert load_store(settings).get_feature_view("weather").ttl == timedelta(hours=6)


def test_unchanged_definitions_are_not_compared_and_feast_not_imported(settings: Settings) -> None:
    """The hourly run's apply_definitions, definitions unchanged: no Feast import, nothing applied.
    A different fingerprint on record (the definitions, Feast or its configuration changed) makes
    it compare with the registry again and record the new one."""
    assert pipeline.apply_definitions(settings)
    script = (
        "import sys; from pathlib import Path; from include.flights import pipeline; "
        "from include.mlops.settings import Settings; "
        f"assert pipeline.apply_definitions(Settings(state_dir=Path({str(settings.state_dir)!r}))) == []; "
        "print(sorted(m for m in ('feast', 'pandas', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

    record = settings.feast_dir / APPLIED
    record.write_text("an older fingerprint")
    store = load_store(settings)
    store.delete_feature_view("weather")  # the registry lost a view the record cannot know about
    assert pipeline.apply_definitions(settings) == ["feature view weather"]
    assert record.read_text() == definitions_fingerprint(settings, pipeline.DEFINITION_SOURCES)


def test_embedded_state_lives_in_the_state_folder(settings: Settings) -> None:
    pipeline.apply_definitions(settings)
    assert (settings.feast_dir / "registry.sqlite").is_file()
    source = load_store(settings).get_feature_view("route_ops").batch_source
    assert source.path == str(settings.state_dir / "lake/features/route_ops/*.parquet")


def test_one_feature_service_per_model_version(settings: Settings) -> None:
    pipeline.apply_definitions(settings)
    store = load_store(settings)
    views = [store.get_feature_view("weather"), store.get_feature_view("route_ops")]
    service = register_feature_service(store, "flight_delay", 3, views, description="test")
    assert service.name == "flight_delay_v3"
    fetched = load_store(settings).get_feature_service("flight_delay_v3")
    assert [p.name for p in fetched.feature_view_projections] == ["weather", "route_ops"]
    # Registering definitions again leaves the model's feature service alone.
    assert pipeline.apply_definitions(settings) == []
    assert load_store(settings).get_feature_service("flight_delay_v3")


def test_concurrent_registry_writers_lose_nothing(settings: Settings) -> None:
    """Processes that write the registry at once (a backfill's runs, a training run) each keep
    their change: the SQL registry writes each object's own row."""
    from concurrent.futures import ThreadPoolExecutor

    pipeline.apply_definitions(settings)

    def register(worker: int) -> None:
        store = load_store(settings)  # each writer has its own store and registry cache, as a process does
        views = [store.get_feature_view("weather")]
        for version in range(6):
            register_feature_service(store, f"model{worker}", version, views)
            pipeline.apply_definitions(settings)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(register, range(3)))
    names = {service.name for service in load_store(settings).list_feature_services()}
    assert names == {f"model{w}_v{v}" for w in range(3) for v in range(6)}
    assert len(load_store(settings).list_feature_views()) == len(definitions.FEATURE_VIEWS)


def test_the_file_registry_of_an_older_state_folder_is_imported(settings: Settings) -> None:
    """A state folder made when the embedded registry was Feast's file registry keeps its
    definitions, materialized intervals and model versions' feature services: the first store
    built imports the file, once."""
    from datetime import UTC, datetime

    old = settings.feast_dir / FILE_REGISTRY
    before = load_store(settings, registry={"path": str(old)})  # Feast's file registry, as it was
    apply_if_changed(before, [*definitions.ENTITIES, *definitions.FEATURE_VIEWS])
    interval = (datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 2, tzinfo=UTC))
    before.registry.apply_materialization(before.get_feature_view("weather"), before.project, *interval)
    register_feature_service(before, "flight_delay", 3, [before.get_feature_view("weather")])

    store = load_store(settings)
    assert not old.exists() and old.with_name(FILE_REGISTRY + ".imported").is_file()
    assert [p.name for p in store.get_feature_service("flight_delay_v3").feature_view_projections] == ["weather"]
    assert {v.name for v in store.list_feature_views()} == {v.name for v in definitions.FEATURE_VIEWS}
    assert store.get_feature_view("weather").materialization_intervals == [interval]
    assert pipeline.apply_definitions(settings) == []  # nothing left to apply


@pytest.mark.parametrize(("model", "version"), [("", 1), ("m", "latest"), ("m", -1)])
def test_feature_service_name_needs_a_model_and_a_numeric_version(model: str, version: object) -> None:
    with pytest.raises(ValueError, match="numeric version"):
        feature_service_name(model, version)
