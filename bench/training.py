"""Training benchmark: training-set build + training + MLflow logging for 8 and 52 weeks of flights.

Each size runs in a fresh process on its own temporary state folder (features built first, not
timed). The timed part is `include.flights.training.train` with one configuration. The share spent
in MLflow is measured with cProfile: the cumulative time of every call from the project's code
into the `mlflow` package (creating runs, logging params, metrics, datasets, figures, the model,
registering the version). The profiler slows Python-heavy code more than NumPy-heavy code, so the
share is an upper bound; the wall time is measured in a separate run without the profiler.

    python -m bench.training [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.features import Result, isolated, peak_mb
from include.flights import model, pipeline, training
from include.mlops.lake import Interval
from include.mlops.settings import Settings

SIZES = {
    "8 weeks": Interval(datetime(2013, 3, 4, tzinfo=UTC), datetime(2013, 4, 29, tzinfo=UTC)),
    "52 weeks": Interval(datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 12, 31, tzinfo=UTC)),
}
QUICK = {"2 weeks": Interval(datetime(2013, 3, 4, tzinfo=UTC), datetime(2013, 3, 18, tzinfo=UTC))}
TARGET_SHARE = 0.10
RESULTS = Path(__file__).resolve().parent / "results"


def build(state_dir: str, window: Interval) -> Result:
    settings = Settings(state_dir=Path(state_dir))
    pipeline.validate_batches(settings, pipeline.ingest(settings, window))
    pipeline.build_features(settings, window)
    pipeline.apply_definitions(settings)
    return {"peak_mb": peak_mb()}


def train(state_dir: str, window: Interval, profile: bool) -> Result:
    """One training run; with `profile`, the seconds spent in MLflow calls made by the project."""
    settings = Settings(state_dir=Path(state_dir))
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = training.train(settings, window, model.ModelConfig(), configurations=1, reason="benchmark")
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    out: Result = {"seconds": seconds, "peak_mb": peak_mb(), "version": result["version"]}
    if profiler:
        out["mlflow_seconds"] = _mlflow_seconds(pstats.Stats(profiler))
    return out


def _mlflow_seconds(stats: pstats.Stats) -> float:
    """Cumulative time of calls from the project's code (include/) into the mlflow package."""
    total = 0.0
    for (file, _, _), (_, _, _, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "/mlflow/" not in file:
            continue
        for (caller_file, _, _), (_, _, _, cumulative) in callers.items():
            if "/include/" in caller_file:
                total += cumulative
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two weeks only")
    args = parser.parse_args(argv)
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: Result = {}
    for size, window in (QUICK if args.quick else SIZES).items():
        print(f"measuring training on {size} {window} ...", flush=True)
        state = tempfile.mkdtemp(prefix="bench-training-", dir="/tmp")
        try:
            slug = size.replace(" ", "-")
            isolated(build, state, window, log=logs / f"training-{slug}-build.log")
            timed = isolated(train, state, window, False, log=logs / f"training-{slug}.log")
            profiled = isolated(train, state, window, True, log=logs / f"training-{slug}-profiled.log")
            results[size] = {"run": timed, "profiled": profiled}
        finally:
            shutil.rmtree(state, ignore_errors=True)
    print(f"\n{'measure':<44}{'size':<10}{'figure':<16}target")
    for size, found in results.items():
        run, profiled = found["run"], found["profiled"]
        if "error" in run or "error" in profiled:
            print(f"{'training run':<44}{size:<10}error: {(run.get('error') or profiled.get('error'))[:60]}")
            continue
        share = profiled["mlflow_seconds"] / profiled["seconds"]
        verdict = "ok" if share < TARGET_SHARE else "MISSED"
        print(f"{'build + train + log, s / peak MB':<44}{size:<10}{run['seconds']:.1f} / {run['peak_mb']:.0f}")
        print(f"{'share in MLflow (profiled, upper bound)':<44}{size:<10}{share:.1%}{'':<10}< 10%: {verdict}")
    (RESULTS / "training.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
