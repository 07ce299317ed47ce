"""Decision benchmark: how often the drift check cries wolf, and how often it names a broken feed.

On the replay's features of 2013 (built in a temporary folder, not timed), with the rules and the
calibration of `include/flights/`:

1. **Same distribution, 30 trials** over weeks spread across the year (every week from March to
   December, a trial every ten days or so), each a week and the four before it pooled, then split
   three ways in turn: random halves, alternating days, the same rows reshuffled. One half is the
   window, the other both the drift reference and the quality baseline; the model is the one
   trained on the eight weeks before the pooled span. A trial fails if the check asks for a retrain
   or reports an incident. The issue's bar: no retrain in at least 95% of the trials.
2. **Injected faults**: on ten weeks spread across the year, each of a stuck temperature sensor,
   a temperature feed in Celsius, a silent and a half-silent weather feed, and one carrier rising to
   60% of the flights, against the four weeks before. A fault counts as found when the check decides
   `incident` and names the faulty column.

Trials of the held-out half (July to December) are reported apart: the calibration never saw them.

    python -m bench.decisions
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.features import Result, isolated_in_new_folder
from include.flights import model, monitoring, training
from include.flights.replay import Replay
from include.mlops import drift
from include.mlops.lake import Interval

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT = datetime(2013, 7, 1, tzinfo=UTC)
SPLITS = ("random halves", "alternating days", "reshuffled rows")
WEATHER = [f"weather__{c}" for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "visib")]
FAULTS = {
    "stuck temperature sensor": (lambda f: f.assign(weather__temp=41.0), "weather__temp"),
    "temperature in Celsius": (lambda f: f.assign(weather__temp=(f["weather__temp"] - 32) * 5 / 9), "weather__temp"),
    "silent weather feed": (lambda f: f.assign(**dict.fromkeys(WEATHER, np.nan)), "weather__temp"),
    "half-silent weather feed": (
        lambda f: f.assign(**{c: f[c].where(np.random.default_rng(0).random(len(f)) >= 0.5) for c in WEATHER}),
        "weather__temp",
    ),
    "one carrier at 60%": (
        lambda f: pd.concat(
            [
                f[f["carrier"] == "UA"],
                f[f["carrier"] != "UA"].sample(int((f["carrier"] == "UA").sum() * 2 / 3), random_state=0),
            ]
        ),
        "carrier",
    ),
}


def run(folder: str) -> Result:
    replay = Replay(Path(folder))
    replay.build_features()
    replay.build_frames()
    features = replay.features
    rules = monitoring.load_rules()
    days = [datetime(2013, 3, 5, tzinfo=UTC) + timedelta(days=int(d)) for d in np.linspace(0, 290, 30)]
    models: dict[str, tuple[object, dict[str, float]]] = {}  # by training window: the model, its importances

    def rows(start: datetime, end: datetime) -> pd.DataFrame:
        return replay.rows(Interval(start, end))

    def predictor(at: datetime) -> tuple[object, dict[str, float]]:
        window = Interval(at - timedelta(days=35 + 56), at - timedelta(days=35))
        if window.key not in models:
            parts = training.split(replay.labelled(window, window.end), window)
            pipe = training.fit(model.ModelConfig(), parts.train, parts.validation, features).pipe
            models[window.key] = (pipe, training.importance(pipe, parts.validation, features, 0))
        return models[window.key]

    def decide(current: pd.DataFrame, reference: pd.DataFrame, fitted: tuple, at: datetime) -> drift.DriftDecision:
        pipe, importance = fitted
        scored = [f.assign(prediction=pipe.predict_proba(f[features])[:, 1]) for f in (current, reference)]
        observation, _ = monitoring.observe(
            at,
            scored[0],
            scored[1],
            scored[0],
            scored[1],
            features,
            importance,
            rules,
            report=False,
            baseline_window="other part",
        )
        return drift.decide(rules.policy, observation, drift.History())

    trials = []
    for number, at in enumerate(days):
        pooled = rows(at - timedelta(days=35), at)
        split = SPLITS[number % 3]
        if split == "random halves":
            shuffled = pooled.sample(frac=1, random_state=number)
            current, base = shuffled.iloc[: len(pooled) // 2], shuffled.iloc[len(pooled) // 2 :]
        elif split == "alternating days":
            odd = pooled["sched_dep_at"].dt.dayofyear % 2 == 1
            current, base = pooled[odd], pooled[~odd]
        else:
            current, base = pooled.sample(frac=1, random_state=number), pooled
        decision = decide(current, base, predictor(at), at)
        trials.append(
            {
                "at": at.date().isoformat(),
                "split": split,
                "action": decision.action,
                "drift_share": decision.drift_share,
                "quality_low": decision.quality.low if decision.quality else None,
                "incidents": [f"{f.column} {f.check}" for f in decision.incidents],
            }
        )
    faults = []
    for at in days[::3][:12]:
        week, reference = rows(at - timedelta(days=7), at), rows(at - timedelta(days=35), at - timedelta(days=7))
        for name, (inject, column) in FAULTS.items():
            decision = decide(inject(week), reference, predictor(at), at)
            named = any(f.column == column for f in decision.incidents)
            faults.append({"at": at.date().isoformat(), "fault": name, "action": decision.action, "named": named})
    return {"trials": trials, "faults": faults}


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(
        "building the features of 2013 and judging 30 same-distribution trials and 50 injected faults ...", flush=True
    )
    found = isolated_in_new_folder(run, prefix="bench-decisions-", log=logs / "decisions.log")
    (RESULTS / "decisions.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    if "error" in found:
        print(f"decision benchmark failed: {found['error']}")
        return 1
    trials = found["trials"]
    print(f"\n{'same-distribution trials':<40}{'trials':<8}{'no retrain':<12}{'no incident':<13}target")
    for label, part in (
        ("all", trials),
        ("January-June (calibration)", [t for t in trials if t["at"] < HELD_OUT.date().isoformat()]),
        ("July-December (held out)", [t for t in trials if t["at"] >= HELD_OUT.date().isoformat()]),
        *((f"  {split}", [t for t in trials if t["split"] == split]) for split in SPLITS),
    ):
        quiet = sum(t["action"] != "retrain" for t in part) / len(part)
        clean = sum(not t["incidents"] for t in part) / len(part)
        target = f">= 95%: {'ok' if quiet >= 0.95 else 'MISSED'}" if label == "all" else ""
        print(f"{label:<40}{len(part):<8}{quiet:<12.0%}{clean:<13.0%}{target}")
    for trial in trials:
        if trial["action"] != "no_drift":
            print(f"  {trial['at']} {trial['split']}: {trial['action']} {trial['incidents']}")
    print(f"\n{'injected fault':<32}{'weeks':<8}{'incident, named':<18}")
    for name in FAULTS:
        part = [f for f in found["faults"] if f["fault"] == name]
        named = sum(f["action"] == "incident" and f["named"] for f in part)
        print(f"{name:<32}{len(part):<8}{named} of {len(part)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
