"""Run the library's steps outside Airflow.

    python -m include.cli ingest       --start 2026-11-26 --end 2026-11-27
    python -m include.cli features     --start 2026-11-26 --end 2026-11-27
    python -m include.cli materialize  --start 2026-11-26 --end 2026-11-27
    python -m include.cli feature-pipeline --start 2026-11-26 --end 2026-11-27   # all of the above
    python -m include.cli training-set --start 2026-11-20 --end 2026-11-27 --out train.parquet
    python -m include.cli train --start 2026-10-01 --end 2026-11-26 --configurations 4
    python -m include.cli gate --version 3 [--at 2026-11-27] [--rules rules.yaml] [--no-promote]
    python -m include.cli rollback --reason "v3 mislabels snow days" [--to 2]
    python -m include.cli score --start 2026-11-26 --end 2026-11-27
    python -m include.cli drift [--at 2026-11-27] [--days 7] [--rules drift_rules.yaml]
    python -m include.cli clock [--at 2026-12-04T15:00]
    python -m include.cli replay [--start 2013-01-01 --end 2013-12-31] [--out state/replay] [--fresh]
    python -m include.cli calibrate [--start 2013-01-01 --end 2013-07-01] [--out state/replay] [--write]

Dates are UTC days (or ISO datetimes with a zone); the interval is [start, end). `gate` judges a
version against the champion on the week before `--at` (default: today, UTC) and promotes it if it
passes; `rollback` moves the champion back (default: to the previous champion). Both go through
the same locked, compare-and-set and audited path as the DAGs. `score` writes the champion's
predictions made at the hours of (start, end] (of the flights departing 3 to 4 hours after each,
with the default lead) to the predictions log; `drift` runs the drift check of the `--days`
before `--at` and records it, but triggers nothing (that is the drift_monitoring DAG's job).
`clock` says which 2013 instant the replay serves (`MLOPS_REPLAY_WEEKS_AHEAD` picks the season; a
state folder keeps the one it was built on). `replay` replays the loop and three baselines over 2013
(`include/flights/replay.py`), resuming an interrupted run in the same folder, writes `report.md`
and `quality.png` there and logs the summary to MLflow's experiment `replay`. `calibrate` measures
the drift monitor's per-column thresholds and data-quality limits on the replay's features of the
calibration period (`include/flights/calibration.py`) and, with `--write`, replaces
`include/flights/drift_calibration.yaml`. Settings come from the environment (MLOPS_*), as in
Airflow.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from include.flights import pipeline
from include.mlops import records
from include.mlops.gate import GateError
from include.mlops.lake import Interval
from include.mlops.registry import ChampionChangedError
from include.mlops.settings import Settings
from include.mlops.validation import DataValidationError


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _ingest(settings: Settings, interval: Interval, _: argparse.Namespace) -> object:
    batches = pipeline.ingest(settings, interval)
    return pipeline.validate_batches(settings, batches)


def _features(settings: Settings, interval: Interval, _: argparse.Namespace) -> object:
    return pipeline.build_features(settings, interval)


def _materialize(settings: Settings, interval: Interval, _: argparse.Namespace) -> object:
    return {"applied": pipeline.apply_definitions(settings), **pipeline.materialize(settings, interval)}


def _feature_pipeline(settings: Settings, interval: Interval, args: argparse.Namespace) -> object:
    return {
        "validated": _ingest(settings, interval, args),
        "features": _features(settings, interval, args),
        "materialized": _materialize(settings, interval, args),
    }


def _training_set(settings: Settings, interval: Interval, args: argparse.Namespace) -> object:
    frame = pipeline.training_set(settings, interval)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    return {"rows": len(frame), "columns": len(frame.columns), "path": str(args.out)}


def _train(settings: Settings, interval: Interval, args: argparse.Namespace) -> object:
    from include.flights import model, training

    base = model.ModelConfig(family=args.family, seed=args.seed)
    return training.train(settings, interval, base, configurations=args.configurations, reason=args.reason)


def _gate(settings: Settings, args: argparse.Namespace) -> object:
    from include.flights import gating

    at = (args.at or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    rules = gating.load_rules(args.rules)
    context = {records.ACTOR: "command line"}
    gated = gating.evaluate_candidate(settings, args.version, at, rules, context=context)
    if args.no_promote or not gated.passed:
        return gated.to_dict()
    return gating.promote(settings, gated, at, rules, context)


def _rollback(settings: Settings, args: argparse.Namespace) -> object:
    from include.mlops import registry

    move = registry.rollback(settings, settings.model_name, args.to, args.reason, {records.ACTOR: "command line"})
    return move.to_dict()


def _score(settings: Settings, interval: Interval, _: argparse.Namespace) -> object:
    from include.flights import inference

    return inference.score(settings, interval).to_dict()


def _drift(settings: Settings, args: argparse.Namespace) -> object:
    from include.flights import monitoring

    at = (args.at or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    rules = monitoring.load_rules(args.rules)
    return monitoring.check(settings, at, args.days, rules, context={records.ACTOR: "command line"}).to_dict()


INTERVAL_STEPS = {
    "ingest": (_ingest, "fetch the interval's raw data, keep it, validate it (quarantining bad rows)"),
    "features": (_features, "build the interval's feature partitions in the offline store"),
    "materialize": (_materialize, "apply changed Feast definitions and load the interval into the online store"),
    "feature-pipeline": (_feature_pipeline, "ingest, features and materialize in one go"),
    "training-set": (_training_set, "build a point-in-time training set into a Parquet file"),
    "train": (_train, "train, log to MLflow and register a model version, as the training DAG does"),
    "score": (_score, "predict, at each hour of (start, end], the flights whose prediction time it is, into the log"),
}


def _replay(settings: Settings, args: argparse.Namespace) -> object:
    import shutil

    from include.flights import replay, replay_report

    if args.fresh and args.out.exists():
        shutil.rmtree(args.out / "checkpoint", ignore_errors=True)
    config = replay.ReplayConfig(start=args.start, end=args.end, training_days=args.training_days)
    started = time.perf_counter()
    summary = replay.Replay(args.out, config, settings).run()
    summary["wall_seconds"] = time.perf_counter() - started
    report = replay_report.write(summary, args.out)
    run_id = replay_report.log_to_mlflow(settings, summary, args.out)
    table = {
        name: {half: {k: result[half][k] for k in ("mean_roc_auc", "retrains", "promotions")} for half in replay.HALVES}
        for name, result in summary["policies"].items()
    }
    return {"report": str(report), "mlflow_run_id": run_id, "wall_seconds": summary["wall_seconds"], **table}


def _calibrate(settings: Settings, args: argparse.Namespace) -> object:
    from include.flights import calibration, monitoring, replay

    frames = replay.Replay(args.out, replay.ReplayConfig(), settings)  # the year's frames, shared with `replay`
    frames.build_features()
    frame = frames.build_frames()
    import yaml

    rules = yaml.safe_load(monitoring.DEFAULT_RULES.read_text()) | {"calibration": {}}  # measured, not read
    found = calibration.calibrate(frame, frames.features, monitoring.load_rules(rules), args.start, args.end)
    path = calibration.write(found) if args.write else None
    return {"written": str(path) if path else None, **found.to_dict()}


def _clock(settings: Settings, args: argparse.Namespace) -> object:
    source = pipeline.flight_source(settings)  # refuses a clock the state folder was not built on
    at = args.at or datetime.now(UTC)
    return {
        "at": at.isoformat(),
        "replays": f"{source.clock.to_source_time(at):%A %d %B %Y, %H:%M} UTC",
        "weeks_ahead": settings.replay_weeks_ahead,
    }


REGISTRY_STEPS = {
    "clock": (_clock, "which 2013 instant the replay serves at --at (default: now), on the state folder's clock"),
    "gate": (_gate, "judge a model version against the champion; promote it if it passes"),
    "rollback": (_rollback, "move the champion back to an earlier version, audited"),
    "drift": (_drift, "check the predictions log for drift against the champion's training data; record it"),
    "replay": (_replay, "replay the loop and three baselines over 2013; write the report, log it to MLflow"),
    "calibrate": (_calibrate, "calibrate the drift monitor's thresholds and data-quality limits on 2013's first half"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.cli", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="step", required=True)
    for name, (_, help_text) in INTERVAL_STEPS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--start", type=_instant, required=True, help="interval start (UTC)")
        command.add_argument("--end", type=_instant, required=True, help="interval end, exclusive (UTC)")
        if name == "training-set":
            command.add_argument("--out", type=Path, required=True, help="Parquet file to write")
        if name == "train":
            command.add_argument("--family", default="hist_gradient_boosting", help="model family")
            command.add_argument("--configurations", type=int, default=1, help="configurations searched")
            command.add_argument("--seed", type=int, default=42)
            command.add_argument("--reason", default="manual (command line)", help="why this run")
    gate = commands.add_parser("gate", help=REGISTRY_STEPS["gate"][1], description=REGISTRY_STEPS["gate"][1])
    gate.add_argument("--version", type=int, required=True, help="the candidate version")
    gate.add_argument("--at", type=_instant, help="the gate's time; its evaluation week ends at that UTC day")
    gate.add_argument("--rules", help="a rule file (YAML); default: include/flights/promotion_rules.yaml")
    gate.add_argument("--no-promote", action="store_true", help="decide and record, but do not promote")
    rollback = commands.add_parser("rollback", help=REGISTRY_STEPS["rollback"][1])
    rollback.add_argument("--to", type=int, help="the version to restore; default: the previous champion")
    rollback.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    check = commands.add_parser("drift", help=REGISTRY_STEPS["drift"][1], description=REGISTRY_STEPS["drift"][1])
    check.add_argument("--at", type=_instant, help="the check's time; its window ends at that UTC day")
    check.add_argument("--days", type=int, default=7, help="days of predictions before --at (default 7)")
    check.add_argument("--rules", help="a rule file (YAML); default: include/flights/drift_rules.yaml")
    clock = commands.add_parser("clock", help=REGISTRY_STEPS["clock"][1], description=REGISTRY_STEPS["clock"][1])
    clock.add_argument("--at", type=_instant, help="a real instant (default: now)")
    replay = commands.add_parser("replay", help=REGISTRY_STEPS["replay"][1], description=REGISTRY_STEPS["replay"][1])
    replay.add_argument("--start", type=_instant, default=datetime(2013, 1, 1, tzinfo=UTC), help="first day (UTC)")
    replay.add_argument("--end", type=_instant, default=datetime(2013, 12, 31, tzinfo=UTC), help="end, excluded")
    replay.add_argument("--training-days", type=int, default=56, help="training window in days (default 56)")
    replay.add_argument("--out", type=Path, default=None, help="its folder; default: replay/ in the state folder")
    replay.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    calibrate = commands.add_parser("calibrate", help=REGISTRY_STEPS["calibrate"][1])
    calibrate.add_argument("--start", type=_instant, default=datetime(2013, 1, 1, tzinfo=UTC), help="first day (UTC)")
    calibrate.add_argument("--end", type=_instant, default=datetime(2013, 7, 1, tzinfo=UTC), help="end, excluded")
    calibrate.add_argument("--out", type=Path, default=None, help="the replay folder whose features it reads")
    calibrate.add_argument("--write", action="store_true", help="replace include/flights/drift_calibration.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if args.step in ("replay", "calibrate") and args.out is None:
            args.out = settings.state_dir / "replay"
        if args.step in REGISTRY_STEPS:
            result = REGISTRY_STEPS[args.step][0](settings, args)
        else:
            result = INTERVAL_STEPS[args.step][0](settings, Interval(args.start, args.end), args)
    except (DataValidationError, ValueError, LookupError, GateError, ChampionChangedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
