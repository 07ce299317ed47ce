"""Regret benchmark: what a gate can know, on the week it judges, about the week after.

The decisions issue asks for both a loop at least as good as blind weekly retraining and a regret
of at most 15% (promotions worse the week after than the model they replaced). This measures
whether any gate on a week of evidence can give both, on the replay's features of 2013 (built in a
temporary folder, not timed), with the replay's training recipe (the window's labelled flights,
split by time; the default model):

1. the weekly models: the first one on the replay's first 56 days, then one trained on the 8 weeks
   before each later week's start, as the blind policy trains them;
2. each week, every model trained before it scored on it (the weekly ROC AUC), and on the gate's
   evaluation rows of that week's candidate (the days its training window held out);
3. a family of gates: every week (or every second week) the fresh candidate replaces the champion
   when its ROC AUC on the gate's rows beats the champion's by at least `theta`. Per half of the
   year: mean weekly ROC AUC, retrains, promotions and regret, as the replay counts them;
4. how much the gate's evidence says about the week after: how often the candidate is better the
   week after than the model one (or two) weeks older, and the correlation between the two weeks'
   differences.

The calibration half (to 1 July) is where a rule may be chosen; the held-out half is reported.

    python -m bench.regret
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np

from bench.features import Result, isolated_in_new_folder
from include.flights import gating, model, training
from include.flights.replay import HALVES, Replay
from include.mlops.lake import Interval

RESULTS = Path(__file__).resolve().parent / "results"
THETAS = (None, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02)  # None: no gate
EVERY_WEEKS = (1, 2)
REGRET_BAR = 0.15


def run(folder: str) -> Result:
    """Every weekly model's ROC AUC on every later week and on every later gate's rows."""
    from sklearn.metrics import roc_auc_score

    replay = Replay(Path(folder))
    replay.build_features()
    replay.build_frames()
    config, features = replay.config, replay.features
    weeks = config.weeks()
    windows = [Interval(config.start, config.first_day)] + [
        Interval(week.start - timedelta(days=config.training_days), week.start) for week in weeks[1:]
    ]
    numeric = [c for c in features if c not in model.CATEGORICAL]
    models, evaluation = [], []
    for window in windows:
        parts = training.split(replay.labelled(window, window.end), window)
        models.append(model.build_pipeline(config.model, numeric).fit(parts.train[features], parts.train[model.LABEL]))
        evaluation.append(gating.evaluation_window(window.end, parts.evaluation_start, config.evaluation_days))

    def auc(rows, number: int) -> float:
        return float(roc_auc_score(rows[model.LABEL], models[number].predict_proba(rows[features])[:, 1]))

    weekly, gate = {}, {}  # "model,week" -> ROC AUC
    for j, week in enumerate(weeks):
        rows = replay.rows(week)
        gate_rows = replay.labelled(evaluation[j], week.start) if j else None
        for i in range(j + 1):
            weekly[f"{i},{j}"] = auc(rows, i)
            if gate_rows is not None:
                gate[f"{i},{j}"] = auc(gate_rows, i)
    return {"halves": [config.half(week.start) for week in weeks], "weekly": weekly, "gate": gate}


def policy(found: Result, every: int, theta: float | None) -> dict[str, dict[str, float]]:
    """The gate family's figures per half: the candidate of every `every`-th week replaces the
    champion when it beats it on the gate's rows by `theta` (None: always)."""
    halves, weekly, gate = found["halves"], found["weekly"], found["gate"]
    figures = {half: {"auc": [], "retrains": 0, "promotions": 0, "worse": 0} for half in HALVES}
    champion = 0
    for j, half in enumerate(halves):
        if j and j % every == 0:
            figures[half]["retrains"] += 1
            if theta is None or gate[f"{j},{j}"] - gate[f"{champion},{j}"] >= theta:
                figures[half]["promotions"] += 1
                figures[half]["worse"] += weekly[f"{j},{j}"] < weekly[f"{champion},{j}"]
                champion = j
        figures[half]["auc"].append(weekly[f"{champion},{j}"])
    return {
        half: {
            "mean_roc_auc": float(np.mean(f["auc"])),
            "retrains": f["retrains"],
            "promotions": f["promotions"],
            "regret": f["worse"] / f["promotions"] if f["promotions"] else 0.0,
            "worse": f["worse"],
        }
        for half, f in figures.items()
    }


def evidence(found: Result, lag: int) -> dict[str, dict[str, float]]:
    """Per half: how often a week's candidate beats the model `lag` weeks older the week after, and
    the correlation of their difference on the gate's rows with the difference the week after."""
    halves, weekly, gate = found["halves"], found["weekly"], found["gate"]
    found_by_half = {}
    for half in HALVES:
        pairs = [
            (gate[f"{j},{j}"] - gate[f"{j - lag},{j}"], weekly[f"{j},{j}"] - weekly[f"{j - lag},{j}"])
            for j in range(lag, len(halves))
            if halves[j] == half
        ]
        judged, after = np.array(pairs).T
        found_by_half[half] = {
            "pairs": len(pairs),
            "better_after": float((after > 0).mean()),
            "correlation": float(np.corrcoef(judged, after)[0, 1]),
        }
    return found_by_half


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print("building the features of 2013 and a model per week, each scored on every later week ...", flush=True)
    found = isolated_in_new_folder(run, prefix="bench-regret-", log=logs / "regret.log")
    if "error" in found:
        print(f"regret benchmark failed: {found['error']}")
        return 1
    table = {f"every {n} week(s), theta {theta}": policy(found, n, theta) for n in EVERY_WEEKS for theta in THETAS}
    lags = {f"{lag} week(s) older": evidence(found, lag) for lag in (1, 2)}
    (RESULTS / "regret.json").write_text(json.dumps({"policies": table, "evidence": lags}, indent=2) + "\n")
    heading = "".join(f"{half + ': ROC AUC, retrains, regret':<44}" for half in HALVES)
    print(f"\n{'gate on the judged week':<34}{heading}")
    for name, halves in table.items():
        cells = [
            f"{f['mean_roc_auc']:.4f}  {f['retrains']:>2}  {f['worse']:>2} of {f['promotions']:<2} ({f['regret']:.0%})"
            for f in halves.values()
        ]
        print(f"{name:<34}" + "".join(f"{cell:<44}" for cell in cells))
    print(f"\n(regret bar: at most {REGRET_BAR:.0%}; blind weekly is 'every 1 week(s), theta None')")
    heading = "".join(f"{half + ': better after, correlation':<44}" for half in HALVES)
    print(f"\n{'candidate against a model':<26}{heading}")
    for name, halves in lags.items():
        cells = [f"{f['better_after']:.0%} of {f['pairs']}, r = {f['correlation']:+.2f}" for f in halves.values()]
        print(f"{name:<26}" + "".join(f"{cell:<44}" for cell in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
