"""Training benchmark: training-set build + training + MLflow logging for 8 and 52 weeks of flights.

Each size runs in a fresh process on its own temporary state folder (features and the MLflow
tracking database are created first, not timed). The timed part is importing MLflow and
`include.flights.training.train` with one configuration. The share spent in MLflow is wall time
measured in the same run: importing MLflow, plus every call into its public API (the functions
of `mlflow`, `mlflow.sklearn`, `mlflow.data`, `mlflow.models` and the methods of `MlflowClient`,
each wrapped by a timer; a call made from inside another counts once). That covers creating
runs, logging params, metrics, datasets, figures and tables, serializing and logging the model,
and registering the version.

    python -m bench.training [--quick]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.features import Result, isolated, peak_mb
from include.flights import model, pipeline, training
from include.mlops import tracking
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
    days = pipeline.feature_days(settings, window)
    pipeline.validate_batches(settings, pipeline.ingest(settings, days))
    pipeline.build_features(settings, days)
    pipeline.apply_definitions(settings)
    tracking.connect(settings)  # the tracking database exists before any run, as in a deployment
    return {"peak_mb": peak_mb()}


class MlflowClock:
    """Wall time spent inside MLflow's public API; nested calls count once."""

    def __init__(self) -> None:
        self.calls: dict[str, float] = {}
        self._depth = 0

    @property
    def seconds(self) -> float:
        return sum(self.calls.values())

    def install(self) -> None:
        import mlflow
        import mlflow.data
        import mlflow.models
        import mlflow.sklearn

        for module in (mlflow, mlflow.sklearn, mlflow.data, mlflow.models):
            for name, fn in vars(module).items():
                if inspect.isfunction(fn) and not name.startswith("_"):
                    setattr(module, name, self._timed(fn))
        for name, fn in vars(mlflow.MlflowClient).items():
            if inspect.isfunction(fn) and not name.startswith("_"):
                setattr(mlflow.MlflowClient, name, self._timed(fn))

    def _timed(self, fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def timed(*args: object, **kwargs: object) -> object:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls[fn.__qualname__] = self.calls.get(fn.__qualname__, 0.0) + time.perf_counter() - start
                self._depth -= 1

        return timed


def train(state_dir: str, window: Interval) -> Result:
    """One training run: its wall time, peak memory and the seconds spent in MLflow."""
    settings = Settings(state_dir=Path(state_dir))
    clock = MlflowClock()
    start = time.perf_counter()
    clock.install()  # imports MLflow: part of what using it costs a task process
    clock.calls["import mlflow"] = time.perf_counter() - start
    training.train(settings, window, model.ModelConfig(), configurations=1, reason="benchmark")
    seconds = time.perf_counter() - start
    calls = dict(sorted(clock.calls.items(), key=lambda item: -item[1]))
    return {"seconds": seconds, "peak_mb": peak_mb(), "mlflow_seconds": clock.seconds, "mlflow_calls": calls}


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
            results[size] = isolated(train, state, window, log=logs / f"training-{slug}.log")
        finally:
            shutil.rmtree(state, ignore_errors=True)
    print(f"\n{'measure':<44}{'size':<10}{'figure':<16}target")
    for size, run in results.items():
        if "error" in run:
            print(f"{'training run':<44}{size:<10}error: {run['error'][:60]}")
            continue
        share = run["mlflow_seconds"] / run["seconds"]
        verdict = "ok" if share < TARGET_SHARE else "MISSED"
        print(f"{'build + train + log, s / peak MB':<44}{size:<10}{run['seconds']:.1f} / {run['peak_mb']:.0f}")
        figure = f"{share:.1%} ({run['mlflow_seconds']:.1f} s)"
        print(f"{'share in MLflow':<44}{size:<10}{figure:<16}< 10%: {verdict}")
        for call, call_seconds in list(run["mlflow_calls"].items())[:4]:
            print(f"{'  of which ' + call + ', s':<44}{size:<10}{call_seconds:.1f}")
    (RESULTS / "training.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
