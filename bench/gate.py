"""Promotion-gate benchmark: one gate on a week of evaluation rows, 1,000 paired resamples, slices
(origin, carrier, destination, each with its own 1,000 resamples) included.

In a fresh process on a temporary state folder (not timed): features for three weeks of real
flights and the week after them, a champion and a candidate trained on the three weeks and
registered. Timed: `include.flights.gating.evaluate_candidate`, split into building the
evaluation set through the feature store, scoring both models (and timing them side by side for
the latency ratio), deciding (the paired bootstraps, overall and per slice, are nearly all of it)
and recording. The bootstrap is also timed alone, beside a peer: the
textbook loop that resamples rows and calls scikit-learn's `roc_auc_score` for each model and
each resample, on the same rows and predictions.

    python -m bench.gate
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.features import Result, isolated_in_new_folder, peak_mb
from include.flights import gating, model, pipeline, training
from include.mlops import bootstrap, registry, tracking
from include.mlops.lake import Interval
from include.mlops.settings import Settings

TRAINING = Interval(datetime(2013, 3, 4, tzinfo=UTC), datetime(2013, 3, 25, tzinfo=UTC))
AT = datetime(2013, 4, 1, tzinfo=UTC)  # the evaluation week: 25-31 March 2013
RESAMPLES = 1000
TARGET_SECONDS = 30.0
RESULTS = Path(__file__).resolve().parent / "results"


def run(state_dir: str) -> Result:
    settings = Settings(state_dir=Path(state_dir))
    days = pipeline.feature_days(settings, Interval(TRAINING.start, AT))
    pipeline.validate_batches(settings, pipeline.ingest(settings, days))
    pipeline.build_features(settings, days)
    pipeline.apply_definitions(settings)
    prepared = training.prepare(settings, TRAINING, "bench")
    parent = tracking.start_run(settings, "gate benchmark", training.training_run(TRAINING, "benchmark").tags())
    versions = []
    for config in (model.ModelConfig(max_iter=20), model.ModelConfig(max_iter=100)):
        trained = training.train_candidate(settings, prepared, config, parent, {})
        versions.append(training.register_version(settings, str(trained["model_uri"]))[0])
    registry.move_champion(settings, settings.model_name, versions[0], None, "promote", "benchmark setup")

    started = time.perf_counter()
    result = gating.evaluate_candidate(settings, versions[1], AT, gating.load_rules())
    total = time.perf_counter() - started

    frame = gating.evaluation_set(settings, AT, TRAINING.start, gating.EVALUATION_DAYS)
    y = frame[model.LABEL].to_numpy()
    rng = np.random.default_rng(0)
    p, q = rng.random(len(y)), rng.random(len(y))  # the bootstrap's cost does not depend on the scores' values
    started = time.perf_counter()
    bootstrap.paired("roc_auc", y, p, q, RESAMPLES)
    alone = time.perf_counter() - started
    started = time.perf_counter()
    _textbook_bootstrap(y, p, q, RESAMPLES)
    textbook = time.perf_counter() - started
    return {
        "rows": result.evaluation_rows,
        "outcome": result.outcome,
        "total": total,
        **result.seconds,
        "bootstrap": alone,
        "textbook_bootstrap": textbook,
        "peak_mb": peak_mb(),
    }


def _textbook_bootstrap(y: np.ndarray, p: np.ndarray, q: np.ndarray, resamples: int) -> list[float]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        deltas.append(roc_auc_score(y[rows], p[rows]) - roc_auc_score(y[rows], q[rows]))
    return deltas


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"measuring the promotion gate on the week before {AT.date()} ...", flush=True)
    found = isolated_in_new_folder(run, prefix="bench-gate-", log=logs / "gate.log")
    (RESULTS / "gate.json").write_text(json.dumps(found, indent=2) + "\n")
    if "error" in found:
        print(f"gate benchmark failed: {found['error']}")
        return 1
    verdict = "ok" if found["total"] < TARGET_SECONDS else "MISSED"
    share = found["deciding"] / found["total"]
    print(f"\n{'measure':<46}{'figure':<14}{'peer':<14}{'ratio':<8}target")
    label = f"gate, s ({found['rows']} rows, {RESAMPLES} resamples)"
    print(f"{label:<46}{found['total']:<14.2f}{'':<22}< 30 s: {verdict}")
    for part in ("evaluation_set", "scoring", "deciding", "recording"):
        print(f"{'  ' + part + ', s':<46}{found[part]:<14.2f}")
    print(f"{'  share of deciding (bootstrap) in the gate':<46}{share:<14.1%}")
    ratio = found["bootstrap"] / found["textbook_bootstrap"]
    figures = f"{found['bootstrap']:<14.2f}{found['textbook_bootstrap']:<14.2f}{ratio:<8.2f}"
    print(f"{'bootstrap alone vs sklearn loop, s':<46}{figures}")
    print(f"{'peak memory, MB':<46}{found['peak_mb']:<14.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
