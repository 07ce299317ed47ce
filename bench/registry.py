"""Feast registry benchmark: the embedded profile's SQL registry on SQLite beside Feast's file
registry (the peer: what the embedded profile kept before), doing the same registry work.

In a fresh process on a temporary state folder (not timed): a day of real flights ingested and
its features built. Then, for each registry in turn, with its own online store, the definitions
applied once and, timed, each step a task of the loop takes, `REPEATS` times, the median kept
(each builds its store first, as a task does; Feast opens the registry on its first use):

- apply, unchanged: `apply_if_changed` finding nothing to do (a task whose definitions' fingerprint
  changed; the hourly run skips it when the fingerprint holds),
- materialize an hour: `feature_store.materialize` (reads the views, writes the online rows,
  records the interval),
- register a service: `register_feature_service` (a training run's new model version),
- read a service: a fresh store's `get_feature_service` and `list_feature_views` (scoring).

    python -m bench.registry
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.features import Result, isolated_in_new_folder, peak_mb
from include.feature_repo import definitions
from include.flights import pipeline
from include.mlops import feature_store
from include.mlops.lake import Interval
from include.mlops.settings import Settings

DAY = Interval(datetime(2013, 3, 4, tzinfo=UTC), datetime(2013, 3, 5, tzinfo=UTC))
REPEATS = 10
TARGET_RATIO = 1.5  # the hour's registry work (materialize, read) against the file registry's
RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("apply, unchanged", "materialize an hour", "register a service", "read a service")


def run(state_dir: str) -> Result:
    settings = Settings(state_dir=Path(state_dir))
    days = pipeline.feature_days(settings, DAY)
    pipeline.validate_batches(settings, pipeline.ingest(settings, days))
    pipeline.build_features(settings, days)
    registries = {
        "sql": {},  # the embedded profile's configuration, as it is
        "file": {
            "registry": {"path": str(settings.feast_dir / "file-registry.pb")},
            "online_store": {"type": "sqlite", "path": "feast/online-file.db"},
        },
    }
    return {name: measure(settings, overrides) for name, overrides in registries.items()} | {"peak_mb": peak_mb()}


def measure(settings: Settings, overrides: dict[str, object]) -> dict[str, float]:
    def store() -> object:
        return feature_store.load_store(settings, **overrides)

    objects = [*definitions.ENTITIES, *definitions.FEATURE_VIEWS]
    feature_store.apply_if_changed(store(), objects)
    views = [view.name for view in definitions.FEATURE_VIEWS]
    hours = iter(range(REPEATS))
    versions = iter(range(1, REPEATS + 1))

    def materialize() -> None:
        start = DAY.start + timedelta(hours=next(hours))
        feature_store.materialize(store(), start, start + timedelta(hours=1), views)

    def register() -> None:
        opened = store()
        feature_store.register_feature_service(opened, "bench", next(versions), [opened.get_feature_view("weather")])

    def read() -> None:
        opened = store()
        opened.get_feature_service("bench_v1")
        opened.list_feature_views()

    steps: dict[str, Callable[[], object]] = {
        "apply, unchanged": lambda: feature_store.apply_if_changed(store(), objects),
        "materialize an hour": materialize,
        "register a service": register,
        "read a service": read,
    }
    return {name: median_seconds(step) for name, step in steps.items()}


def median_seconds(step: Callable[[], object]) -> float:
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"measuring Feast's registries on {DAY.label} ...", flush=True)
    found = isolated_in_new_folder(run, prefix="bench-registry-", log=logs / "registry.log")
    (RESULTS / "registry.json").write_text(json.dumps(found, indent=2) + "\n")
    if "error" in found:
        print(f"registry benchmark failed: {found['error']}")
        return 1
    ours, peer = found["sql"], found["file"]
    print(f"\n{'median of ' + str(REPEATS) + ', s':<34}{'SQL (ours)':<14}{'file (peer)':<14}ratio")
    for step in STEPS:
        print(f"{step:<34}{ours[step]:<14.3f}{peer[step]:<14.3f}{ours[step] / peer[step]:.2f}")
    hour = ("materialize an hour", "read a service")
    ratio = sum(ours[s] for s in hour) / sum(peer[s] for s in hour)
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"{'the hour (materialize, read)':<34}{'':<28}{ratio:.2f}  <= {TARGET_RATIO}: {verdict}")
    print(f"{'peak memory, MB':<34}{found['peak_mb']:<14.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
