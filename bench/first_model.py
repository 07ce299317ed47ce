"""First-model benchmark: does the weekly training run get a first champion on every week of 2013?

A fresh install's first weekly `training_pipeline` run trains the default model (gradient
boosting, `model.ModelConfig()`) on the 8 weeks before its Monday and judges it with the gate's
first-model rules (`include/flights/promotion_rules.yaml`: the log-loss ceiling, the constant
base rate to beat, the slices), as `Replay.judge` does. This replays that run on each of the 52
Mondays of the replay clock's cycle, on the replay's features (built in a temporary folder, not
timed): the replay runs from late October 2013 through the next cycle, so that January's windows
reach back into the end of the year before, as the replay clock serves them to a user who starts
in January. Where the default is rejected, the logistic baseline (the form's other family) is
judged on the same week: when it passes, a reasonable first model existed and the default missed
it; when it fails too, nothing trained on those 8 weeks beats the base rate on the next.

Weeks of the held-out half (July to December) are reported apart: the rules were calibrated on
January to June.

    python -m bench.first_model
"""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.features import Result, isolated_in_new_folder
from include.flights import gating, model, training
from include.flights.clock import CYCLE, CYCLE_ORIGIN
from include.flights.replay import Replay, ReplayConfig
from include.mlops import gate
from include.mlops.lake import Interval

RESULTS = Path(__file__).resolve().parent / "results"
CYCLE_START = CYCLE_ORIGIN + CYCLE  # a cycle whose January has the end of the year before it
FIRST_MONDAY = CYCLE_START + timedelta(days=6)  # 2013-01-07, the first Monday replayed
HELD_OUT = datetime(2013, 7, 1, tzinfo=UTC)
WINDOW = timedelta(days=56)


def run(folder: str) -> Result:
    config = ReplayConfig(start=FIRST_MONDAY - WINDOW - timedelta(days=7), end=CYCLE_START + CYCLE)
    replay = Replay(Path(folder), config)
    replay.build_features()
    replay.build_frames()
    rules = gating.load_rules()
    weeks = []
    for number in range(52):
        monday = FIRST_MONDAY + timedelta(weeks=number)
        window = Interval(monday - WINDOW, monday)
        parts = training.split(replay.labelled(window, window.end), window)
        evaluation = gating.evaluation_window(monday, parts.evaluation_start, config.evaluation_days)
        frame = gating.checked(replay.labelled(evaluation, monday).copy(), evaluation)
        judged = {}
        for family in ("hist_gradient_boosting", "logistic_regression"):
            pipe = training.fit(model.ModelConfig(family=family), parts.train, parts.validation, replay.features).pipe
            base_rate = float(parts.train[model.LABEL].mean())
            rows = gating.evaluation_rows(frame, rules, training.DEFAULT_THRESHOLD, base_rate)
            decision = gate.decide(
                rules,
                rows,
                gate.Predictions(family, pipe.predict_proba(frame[replay.features])[:, 1]),
                None,
                gate.Operational(len(pickle.dumps(pipe)) / 1e6),
            )
            judged[family] = {"outcome": decision.outcome, "failed": [c.name for c in decision.checks if not c.passed]}
            if decision.outcome == "first-model":
                break  # the default passed: the form's other family is not asked
        weeks.append(
            {
                "monday": (monday - CYCLE).date().isoformat(),  # the 2013 day it replays
                "rows": len(frame),
                "late_share_train": round(float(parts.train[model.LABEL].mean()), 3),
                "late_share_evaluation": round(float(frame[model.LABEL].mean()), 3),
                **judged,
            }
        )
    return {"weeks": weeks}


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print("building the replay's features and judging a first model on each of the 52 Mondays ...", flush=True)
    found = isolated_in_new_folder(run, prefix="bench-first-model-", log=logs / "first_model.log")
    (RESULTS / "first_model.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    if "error" in found:
        print(f"first-model benchmark failed: {found['error']}")
        return 1
    weeks = found["weeks"]
    print(f"\n{'weeks of 2013':<34}{'weeks':<7}{'default passes':<16}{'only logistic':<15}neither")
    for label, part in (
        ("all", weeks),
        ("January-June (calibration)", [w for w in weeks if w["monday"] < HELD_OUT.date().isoformat()]),
        ("July-December (held out)", [w for w in weeks if w["monday"] >= HELD_OUT.date().isoformat()]),
    ):
        default = sum(w["hist_gradient_boosting"]["outcome"] == "first-model" for w in part)
        logistic = sum(w.get("logistic_regression", {}).get("outcome") == "first-model" for w in part)
        print(f"{label:<34}{len(part):<7}{default:<16}{logistic:<15}{len(part) - default - logistic}")
    for week in weeks:
        if week["hist_gradient_boosting"]["outcome"] != "first-model":
            print(
                f"  {week['monday']}: late {week['late_share_train']:.0%} in training, "
                f"{week['late_share_evaluation']:.0%} in the evaluation week; default fails "
                f"{week['hist_gradient_boosting']['failed']}; logistic {week['logistic_regression']['outcome']}"
                f" {week['logistic_regression']['failed'] or ''}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
