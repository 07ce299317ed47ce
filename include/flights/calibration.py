"""Calibrate the drift monitor from the data's own noise: per-column drift thresholds and
data-quality limits, written to `drift_calibration.yaml`.

Every rule of the monitor asks "is this more than the usual week-to-week movement?", so the usual
movement is measured, on a calibration period only (January to June 2013 by default; July to
December is held out to judge the rules, never to set them). For each day of the period, the
week before it is compared, as the daily check compares it, with each reference the rules know:

- `production`: the `reference_days` before the week (what the champion has seen in production);
- `training`: a sample of the flights a model promoted a week earlier was trained on (the
  `training_days` before that week, less the validation and gate days).

Each column's drift score comes from the checks' own function (`data_drift`, without the report),
and each data-quality statistic from `data_quality.profile`. Then:

- a column's drift **threshold** is the `percentile` of its scores over the period: a feature
  drifts when it moved more than it did on all but 1% of the period's days; and at least
  `noise_margin` times the same percentile of its scores on the same rows shuffled between the
  window and the reference (what the draw alone gives at the check's sizes). For columns whose
  weekly movement is mostly that noise (the schedule's hours, the carrier and airport mix), the
  percentile alone sits inside the noise: such a column would drift on one ordinary check in a
  hundred by chance, and one of them can carry most of a model's importance;
- a statistic's data-quality **limit** is its largest value over the period times `margin`, and at
  least its floor (`FLOORS`: a feed half silent, a tenth of the values new, ...). A limit at or
  above 1 cannot be reached by a share: it is written as null, listed as not checked.

The prediction's threshold is calibrated with a model trained on the period's first
`training_days`. Seasonal references need more than a year of history: 2013 alone cannot calibrate
them, and the calibration says so rather than inventing thresholds.

    python -m include.cli calibrate [--start 2013-01-01 --end 2013-07-01]
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import model, monitoring, training
from include.mlops import data_quality
from include.mlops.evaluation import Classifier, positive_probability
from include.mlops.lake import Interval
from include.mlops.monitoring import data_drift

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

START = datetime(2013, 1, 1, tzinfo=UTC)
END = datetime(2013, 7, 1, tzinfo=UTC)  # excluded: July to December is held out
PERCENTILE = 99.0
MARGIN = 2.0
NOISE_MARGIN = 2.0
FLOORS = {
    "null_increase": 0.10,  # a tenth more of the values missing
    "stuck": 0.20,  # a fifth more of the values one repeated reading
    "out_of_range": 0.50,  # half the values outside everything the reference saw: a unit change moves most
    "new_category": 0.02,
    "vanished_category": 0.02,
    "category_shift": 0.05,
}
TRAINING_DAYS = 56


def calibrate(
    frame: pd.DataFrame,
    features: list[str],
    rules: monitoring.MonitorRules,
    start: datetime = START,
    end: datetime = END,
    percentile: float = PERCENTILE,
    margin: float = MARGIN,
    noise_margin: float = NOISE_MARGIN,
) -> monitoring.Calibration:
    """The thresholds and limits from the daily checks of [start, end) on `frame` (every flight of
    the period with its features and label, in departure order)."""
    import numpy as np
    import pandas as pd

    policy, window_days = rules.policy, monitoring.WINDOW_DAYS
    numeric, categorical = monitoring.monitored(features, rules.report)
    predictor = _predictor(frame, features, start)
    first = start + timedelta(days=policy.reference_days + window_days)
    history = timedelta(days=TRAINING_DAYS + window_days + 7)  # before a training sample exists
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stats: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    columns = [*numeric, monitoring.PREDICTION]
    judged = _every(columns, categorical)
    days = 0
    for at in pd.date_range(first, end, freq="D", inclusive="left").to_pydatetime():
        window = Interval(at - timedelta(days=window_days), at)
        current = _scored(_rows(frame, window), predictor, features)
        production = _scored(_rows(frame, monitoring.reference_window(policy, window)), predictor, features)
        references = {"production": production}
        if at - history >= start:
            references["training"] = _scored(_training_sample(frame, window, features), predictor, features)
        for kind, reference in references.items():
            # The real movement, and the sampling noise alone: the same rows shuffled into two
            # sides of the same sizes, so that only the draw differs.
            shuffled = pd.concat([current, reference], ignore_index=True).sample(frac=1, random_state=days)
            sides = {
                kind: (current, reference),
                f"{kind} noise": (shuffled.iloc[: len(current)], shuffled.iloc[len(current) :]),
            }
            for name, (now, before) in sides.items():
                result = data_drift(now, before, columns, categorical, judged, rules.report, False)
                for column in result.columns:
                    scores[name][column.column].append(column.score)
        for found in data_quality.profile(current, production, numeric, categorical):
            for name, value in found.stats.items():
                stats[found.column][name].append(value)
        days += 1
    if not days:
        raise ValueError(f"no check fits between {start.date()} and {end.date()}: the calibration period is too short")
    thresholds = {
        kind: {
            column: round(
                max(
                    float(np.percentile(values, percentile)),
                    noise_margin * float(np.percentile(scores[f"{kind} noise"][column], percentile)),
                ),
                4,
            )
            for column, values in sorted(scores[kind].items())
        }
        for kind in ("production", "training")
        if scores[kind]
    }
    limits = {
        column: {name: _limit(name, max(values), margin) for name, values in sorted(found.items())}
        for column, found in sorted(stats.items())
    }
    provenance = {
        "period": [start.date().isoformat(), end.date().isoformat()],
        "checks": days,
        "checks_with_a_training_reference": len(next(iter(scores["training"].values()), [])),
        "window_days": window_days,
        "reference_days": policy.reference_days,
        "percentile": percentile,
        "noise_margin": noise_margin,
        "margin": margin,
        "floors": FLOORS,
        "not_calibrated": {"seasonal": "needs more than 52 weeks of history before the period's checks"},
    }
    log.info("Calibrated drift thresholds and data-quality limits on %d daily checks", days)
    return monitoring.Calibration(thresholds, limits, provenance)


def write(calibration: monitoring.Calibration, path: Path = monitoring.DEFAULT_CALIBRATION) -> Path:
    import yaml

    header = (
        "# The drift monitor's calibration: per-column drift thresholds by reference and data-quality limits,\n"
        "# measured on the data's own noise by `python -m include.cli calibrate` (include/flights/calibration.py).\n"
        "# Do not edit by hand: run the command again.\n"
    )
    path.write_text(header + yaml.safe_dump(calibration.to_dict(), sort_keys=False, width=120))
    return path


def _limit(name: str, largest: float, margin: float) -> float | None:
    limit = max(FLOORS[name], largest * margin)
    return None if limit >= 1 else round(float(limit), 4)


def _every(columns: list[str], categorical: list[str]) -> dict[str, float]:
    """A threshold for every column: calibration keeps the scores, not the verdicts."""
    return dict.fromkeys([*columns, *categorical], 1.0)


def _rows(frame: pd.DataFrame, window: Interval | None) -> pd.DataFrame:
    assert window is not None
    start, end = frame["sched_dep_at"].searchsorted([window.start, window.end])
    return frame.iloc[start:end]


def _training_sample(frame: pd.DataFrame, window: Interval, features: list[str]) -> pd.DataFrame:
    """What a model promoted a week before the window was trained on, sampled as training samples it."""
    trained_at = window.start - timedelta(days=7)
    span = Interval(trained_at - timedelta(days=TRAINING_DAYS), trained_at)
    rows = _rows(frame, span)
    cutoff = span.end - timedelta(days=training.EVALUATION_DAYS + training.VALIDATION_DAYS)
    rows = rows[(rows["sched_dep_at"] < cutoff) & (rows["label_at"] < cutoff)]
    return training.reference_sample(rows, features, seed=0)


def _predictor(frame: pd.DataFrame, features: list[str], start: datetime) -> Classifier:
    window = Interval(start, start + timedelta(days=TRAINING_DAYS))
    rows = _rows(frame, window)
    parts = training.split(rows[rows["label_at"] < window.end], window)
    return training.fit(model.ModelConfig(), parts.train, parts.validation, features).pipe


def _scored(rows: pd.DataFrame, predictor: Classifier, features: list[str]) -> pd.DataFrame:
    return rows.assign(**{monitoring.PREDICTION: positive_probability(predictor, rows[features])})
