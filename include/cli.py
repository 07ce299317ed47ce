"""Run the library's steps outside Airflow.

    python -m include.cli ingest       --start 2026-11-26 --end 2026-11-27
    python -m include.cli features     --start 2026-11-26 --end 2026-11-27
    python -m include.cli materialize  --start 2026-11-26 --end 2026-11-27
    python -m include.cli feature-pipeline --start 2026-11-26 --end 2026-11-27   # all of the above
    python -m include.cli training-set --start 2026-11-20 --end 2026-11-27 --out train.parquet
    python -m include.cli train --start 2026-10-01 --end 2026-11-26 --configurations 4

Dates are UTC days (or ISO datetimes with a zone); the interval is [start, end).
Settings come from the environment (MLOPS_*), as in Airflow.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from include.flights import pipeline
from include.mlops.lake import Interval
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


STEPS = {
    "ingest": (_ingest, "fetch the interval's raw data, keep it, validate it (quarantining bad rows)"),
    "features": (_features, "build the interval's feature partitions in the offline store"),
    "materialize": (_materialize, "apply changed Feast definitions and load the interval into the online store"),
    "feature-pipeline": (_feature_pipeline, "ingest, features and materialize in one go"),
    "training-set": (_training_set, "build a point-in-time training set into a Parquet file"),
    "train": (_train, "train, log to MLflow and register a model version, as the training DAG does"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.cli", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="step", required=True)
    for name, (_, help_text) in STEPS.items():
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        interval = Interval(args.start, args.end)
        settings = Settings.from_env()
        result = STEPS[args.step][0](settings, interval, args)
    except (DataValidationError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
