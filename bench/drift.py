"""Drift-check and batch-scoring benchmark.

Setup (not timed, in a fresh process on a temporary state folder): the features of 34 real weeks
of 2013 (January to August) through the feature store, as the point-in-time frame the model sees;
the first 100,000 flights are the reference, the next 100,000 the current window, a real
seasonal shift from winter into summer.

Timed, each in its own process so that its peak memory is its own:

1. the project's drift check (`include.mlops.monitoring.data_drift` with the default rules:
   Evidently's ValueDrift per column, both sides sampled to `sample_rows`);
2. the floor: NumPy/SciPy computing the same per-column statistics on all 100k x 100k rows
   (Wasserstein distance normed by the reference's std for numeric columns, Jensen-Shannon
   distance of the category shares for categorical ones), as Evidently defines them;
3. the peer: Evidently on all 100k x 100k rows, unsampled.

How the sample size was chosen: for each size, the largest drift score between two disjoint
random samples of the reference (the same distribution, so any score is sampling noise), and how
many columns' verdicts on the real shift agree with the full data's.

Batch scoring: the champion (a model trained on three weeks) makes a day's and a month's hourly
predictions in one call of `include.flights.inference.score` (from the offline store, as a
manual run of past days does), rows per second, beside the model's
`predict_proba` alone on the same rows (the floor: no loading, no feature store). The first day
is scored in a cold process, as the daily task is (importing MLflow, Feast and DuckDB, opening
the registry); the month and a second day in the same, warm process.

    python -m bench.drift
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.features import Result, isolated, peak_mb

FEATURES = (datetime(2013, 1, 7, tzinfo=UTC), datetime(2013, 9, 2, tzinfo=UTC))
ROWS = 100_000
SIZES = (1_000, 5_000, 10_000, 20_000, 50_000)
TRAINING = (datetime(2013, 1, 7, tzinfo=UTC), datetime(2013, 1, 28, tzinfo=UTC))
SCORE_FROM = datetime(2013, 2, 4, tzinfo=UTC)
TARGET_SECONDS, TARGET_RATIO = 10.0, 5.0
RESULTS = Path(__file__).resolve().parent / "results"


def prepare(state_dir: str) -> Result:
    """Features for the whole span, the reference and current frames, a champion."""
    from include.flights import model, pipeline, training
    from include.mlops import registry
    from include.mlops.lake import Interval
    from include.mlops.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    window = Interval(*FEATURES)
    days = pipeline.feature_days(settings, window)
    pipeline.validate_batches(settings, pipeline.ingest(settings, days))
    pipeline.build_features(settings, days)
    pipeline.apply_definitions(settings)
    frame = pipeline.training_set(settings, window)
    inputs = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
    frame = model.model_input(frame, inputs)
    frame.iloc[:ROWS].to_parquet(Path(state_dir) / "reference.parquet")
    frame.iloc[ROWS : 2 * ROWS].to_parquet(Path(state_dir) / "current.parquet")
    trained = training.train(settings, Interval(*TRAINING), model.ModelConfig(), reason="benchmark")
    registry.move_champion(settings, settings.model_name, trained["version"], None, "promote", "benchmark setup")
    return {"rows": len(frame)}


def _frames(state_dir: str):
    import pandas as pd

    from include.flights import model
    from include.flights.monitoring import load_rules

    reference = pd.read_parquet(Path(state_dir) / "reference.parquet")
    current = pd.read_parquet(Path(state_dir) / "current.parquet")
    rules = load_rules()
    config = rules.report
    numeric = [c for c in reference.columns if c not in model.CATEGORICAL and c not in config.ignore]
    categorical = [c for c in model.CATEGORICAL if c not in config.ignore]
    return current, reference, numeric, categorical, config, rules.calibration.thresholds("production")


def evidently_check(state_dir: str, sampled: bool) -> Result:
    from dataclasses import replace

    from include.mlops.monitoring import data_drift

    started = time.perf_counter()
    import evidently.metrics  # noqa: F401  once per process, reported apart from the check

    imported = time.perf_counter() - started
    current, reference, numeric, categorical, config, thresholds = _frames(state_dir)
    if not sampled:
        config = replace(config, sample_rows=ROWS)
    started = time.perf_counter()
    result = data_drift(current, reference, numeric, categorical, thresholds, config)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "import": imported,
        "sampled_rows": list(result.sampled_rows),
        "scores": {c.column: c.score for c in result.columns},
        "drifted": sorted(c.column for c in result.columns if c.drifted),
        "peak_mb": peak_mb(),
    }


def floor_check(state_dir: str) -> Result:
    current, reference, numeric, categorical, _, threshold = _frames(state_dir)
    started = time.perf_counter()
    scores = floor_scores(current, reference, numeric, categorical)
    seconds = time.perf_counter() - started
    drifted = sorted(c for c, s in scores.items() if s >= threshold[c])
    noise = {}
    rng = np.random.default_rng(0)
    for size in SIZES:
        rows = rng.permutation(len(reference))
        a, b = reference.iloc[rows[:size]], reference.iloc[rows[size : 2 * size]]
        same = floor_scores(a, b, numeric, categorical)
        pick = rng.permutation(len(current))[:size], rng.permutation(len(reference))[:size]
        shifted = floor_scores(current.iloc[pick[0]], reference.iloc[pick[1]], numeric, categorical)
        agree = sum((shifted[c] >= threshold[c]) == (c in drifted) for c in scores)
        noise[size] = {
            "max_numeric_noise": max(same[c] for c in numeric),
            "max_categorical_noise": max(same[c] for c in categorical),
            "agreeing_verdicts": agree,
        }
    return {"seconds": seconds, "scores": scores, "drifted": drifted, "noise": noise, "peak_mb": peak_mb()}


def floor_scores(current, reference, numeric: list[str], categorical: list[str]) -> dict[str, float]:
    """Evidently's statistics computed directly: normed Wasserstein, Jensen-Shannon of shares."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    scores = {}
    for column in numeric:
        ref, cur = reference[column].dropna().to_numpy(), current[column].dropna().to_numpy()
        scores[column] = wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    for column in categorical:
        ref, cur = reference[column].dropna(), current[column].dropna()
        keys = sorted(set(ref.unique()) | set(cur.unique()))
        p = ref.value_counts().reindex(keys, fill_value=0).to_numpy() / len(ref)
        q = cur.value_counts().reindex(keys, fill_value=0).to_numpy() / len(cur)
        scores[column] = float(jensenshannon(p, q))
    return scores


def scoring(state_dir: str) -> Result:
    from include.flights import inference, model
    from include.flights.source import default_source
    from include.mlops import tracking
    from include.mlops.lake import Interval
    from include.mlops.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    default_source()  # reading the source's files is setup, as it is once per worker process
    found = {}
    for name, days in (("day, cold process", 1), ("month", 28), ("day", 1)):
        interval = Interval(SCORE_FROM, SCORE_FROM + timedelta(days=days))
        started = time.perf_counter()
        result = inference.score(settings, interval)
        seconds = time.perf_counter() - started
        frame = inference.predictions(settings, Interval.from_key(result.departing))
        loaded, inputs, _ = tracking.load_model(inference.champion(settings)[1])
        x = model.model_input(frame, inputs)
        started = time.perf_counter()
        loaded.predict_proba(x)
        floor = time.perf_counter() - started
        found[name] = {"rows": result.rows, "seconds": seconds, "floor": floor, **result.seconds}
    return found | {"peak_mb": peak_mb()}


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state = tempfile.mkdtemp(prefix="bench-drift-", dir="/tmp")
    print(f"building features of {FEATURES[0].date()} .. {FEATURES[1].date()} and a champion ...", flush=True)
    try:
        found = {"setup": isolated(prepare, state, log=logs / "drift-setup.log")}
        if "error" not in found["setup"]:
            found["ours"] = isolated(evidently_check, state, True, log=logs / "drift-ours.log")
            found["floor"] = isolated(floor_check, state, log=logs / "drift-floor.log")
            found["unsampled"] = isolated(evidently_check, state, False, log=logs / "drift-unsampled.log")
            found["scoring"] = isolated(scoring, state, log=logs / "drift-scoring.log")
    finally:
        shutil.rmtree(state, ignore_errors=True)
    (RESULTS / "drift.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    failed = [name for name, part in found.items() if "error" in part]
    if failed:
        print(f"drift benchmark failed in {', '.join(failed)}: {[found[n]['error'] for n in failed]}")
        return 1
    ours, floor, peer = found["ours"], found["floor"], found["unsampled"]
    ratio = ours["seconds"] / floor["seconds"]
    time_ok = "ok" if ours["seconds"] < TARGET_SECONDS else "MISSED"
    ratio_ok = "ok" if ratio <= TARGET_RATIO else "MISSED"
    agree = sum((c in floor["drifted"]) == (c in ours["drifted"]) for c in floor["scores"])
    print(f"\n{'measure':<52}{'ours':<12}{'floor':<12}{'ratio':<8}target")
    label = f"drift check, s ({ROWS // 1000}k x {ROWS // 1000}k, sampled to {ours['sampled_rows'][0]})"
    figures = f"{ours['seconds']:<12.2f}{floor['seconds']:<12.2f}{ratio:<8.1f}"
    print(f"{label:<52}{figures}< 10 s: {time_ok}; <= 5x: {ratio_ok}")
    figures = f"{peer['seconds']:<12.2f}{'':<12}{peer['seconds'] / floor['seconds']:<8.1f}"
    print(f"{'  Evidently unsampled (peer), s':<52}{figures}")
    print(f"{'  importing Evidently, once per process, s':<52}{ours['import']:<12.2f}")
    figures = f"{ours['peak_mb']:<12.0f}{floor['peak_mb']:<12.0f}{peer['peak_mb']:.0f}"
    print(f"{'  peak memory, MB (ours / floor / unsampled)':<52}{figures}")
    print(f"{'  verdicts agreeing with the floor (full data)':<52}{agree} of {len(floor['scores'])}")
    print(f"{'  drifted columns (ours / floor)':<52}{len(ours['drifted']):<12}{len(floor['drifted']):<12}")
    print(f"\n{'sample size per side':<24}{'max noise, numeric':<22}{'max noise, categorical':<26}verdicts agreeing")
    for size, noise in floor["noise"].items():
        print(
            f"{size:<24}{noise['max_numeric_noise']:<22.3f}{noise['max_categorical_noise']:<26.3f}"
            f"{noise['agreeing_verdicts']} of {len(floor['scores'])}"
        )
    print(f"\n{'batch scoring':<20}{'rows':<10}{'s':<10}{'rows/s':<12}{'predict_proba rows/s (floor)':<30}split (s)")
    for name in ("day, cold process", "day", "month"):
        part = found["scoring"][name]
        split = ", ".join(f"{k} {part[k]:.2f}" for k in ("loading", "features", "scoring"))
        print(
            f"{name:<20}{part['rows']:<10}{part['seconds']:<10.2f}{part['rows'] / part['seconds']:<12.0f}"
            f"{part['rows'] / part['floor']:<30.0f}{split}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
