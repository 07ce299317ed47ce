"""Replay benchmark: the whole year's replay (`make replay`), its wall time, peak memory and the
share of each stage, beside a floor measured in the same run.

The replay runs in a fresh process on a fresh folder, from nothing: features, frames, the walk of
the four policies. The floor is the work no replay of these decisions can skip: fitting the same
models on the same windows, and nothing else (no features, no scoring, no drift check, no gate),
timed in the same process after the replay. The target is the issue's: under 10 minutes.

    python -m bench.replay [--quick]     # --quick: January to March instead of the year
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.features import Result, isolated_in_new_folder, peak_mb
from include.flights import training
from include.flights.replay import HALVES, Replay, ReplayConfig
from include.mlops.lake import Interval
from include.mlops.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 600
YEAR = ReplayConfig()
QUICK = ReplayConfig(end=datetime(2013, 4, 2, tzinfo=UTC))


def replay(folder: str, quick: bool) -> Result:
    config = QUICK if quick else YEAR
    started = time.perf_counter()
    run = Replay(Path(folder), config, Settings(state_dir=Path(folder) / "settings"))
    summary = run.run()
    seconds = time.perf_counter() - started
    stages = {"features": run.shared_seconds["features"] + run.shared_seconds["frames"]}
    for result in summary["policies"].values():
        for stage, spent in result["seconds"].items():
            stages[stage] = stages.get(stage, 0.0) + spent
    stages["other"] = seconds - sum(stages.values())

    # The floor: the same fits, nothing else (a window two policies share is fitted once, as in the replay).
    keys = {version.window for state in run.state.values() for version in state.versions}
    windows = [Interval.from_key(key) for key in sorted(keys)]
    started = time.perf_counter()
    for window in windows:
        parts = training.split(run.labelled(window, window.end), window)
        fitted = training.fit(config.model, parts.train, parts.validation, run.features)
        training.importance(fitted.pipe, parts.validation, run.features, config.model.seed)
    floor = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "stages": stages,
        "fits": len(windows),
        "floor_seconds": floor,
        "days": len(config.days()),
        "table": {name: {half: result[half] for half in HALVES} for name, result in summary["policies"].items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="January to March instead of the year")
    args = parser.parse_args(argv)
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"measuring the replay {'(quick) ' if args.quick else ''}...", flush=True)
    result = isolated_in_new_folder(replay, args.quick, prefix="bench-replay-", log=logs / "replay.log")
    (RESULTS / "replay.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if "error" in result:
        print(f"replay: error: {result['error']}")
        return 1
    seconds, floor = result["seconds"], result["floor_seconds"]
    verdict = "ok" if seconds < TARGET_SECONDS or args.quick else "MISSED"
    print(f"\n{'measure':<46}{'figure':<14}{'floor':<14}{'ratio':<8}target")
    print(
        f"{'replay wall time, s (' + str(result['days']) + ' days)':<46}{seconds:<14.0f}{floor:<14.0f}"
        f"{seconds / floor:<8.1f}< {TARGET_SECONDS} s: {verdict}"
    )
    print(f"{'peak memory, MB':<46}{result['peak_mb']:<14.0f}")
    print(f"{'models fitted':<46}{result['fits']:<14}")
    for stage, spent in result["stages"].items():
        print(f"{'  share: ' + stage:<46}{spent / seconds:<14.1%}{spent:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
