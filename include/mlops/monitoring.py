"""Drift and quality reports with Evidently 0.7, and the per-column drift scores the policy needs.

`data_drift` scores each column with Evidently's statistical test for its method, on the values
Evidently's `ValueDrift` metric reads, and judges it against the column's own threshold (calibrated
from the data's own noise, see `include.flights.calibration`); the report holds one `ValueDrift`
per column, current first, with that threshold, so its tests are the same verdicts (a test holds
them to it). Without the report (`report=False`) a check costs a fiftieth.

Each column's method is fixed by `DriftConfig` rather than left to Evidently's automatic choice,
which switches to K-S p-values below 1,000 non-null rows: the Wasserstein distance normed by the
reference's standard deviation for numeric columns and the Jensen-Shannon distance for categorical
ones, the statistics Evidently itself uses on large samples.

Evidently builds its plots while it computes, about 0.13 s per column whatever the data size, and
its computation grows with the rows; windows larger than `sample_rows` are sampled (seeded, so a
rerun gives the same verdicts). The calibration draws the same samples as the checks, so the
thresholds include that sampling noise; `bench/drift.py` measures it per sample size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from include.mlops.settings import build

if TYPE_CHECKING:
    import pandas as pd


class DriftConfigError(ValueError):
    """The drift report's configuration is malformed; the message names the problem."""


@dataclass(frozen=True)
class DriftConfig:
    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    sample_rows: int = 10_000
    seed: int = 0
    ignore: tuple[str, ...] = ()  # columns not monitored (calendar columns differ by construction)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if self.sample_rows < 100:
            raise DriftConfigError(f"sample_rows must be at least 100, got {self.sample_rows}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DriftConfig:
        return build(cls, data, "drift report", DriftConfigError)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    current_rows: int  # before sampling
    reference_rows: int
    sampled_rows: tuple[int, int]  # what Evidently saw: current, reference
    snapshot: object | None  # the Evidently snapshot (HTML and JSON exports); None without a report
    not_judged: dict[str, str]  # column -> why it was not judged (no values on one side, no threshold)

    def column(self, name: str) -> ColumnDrift:
        return next(c for c in self.columns if c.column == name)


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` rows of `frame`, drawn without replacement and seeded."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def data_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    thresholds: Mapping[str, float],
    config: DriftConfig | None = None,
    report: bool = True,
) -> DriftResult:
    """The drift of every monitored column of `current` against `reference`, and Evidently's report.

    Each column's score comes from Evidently's own statistical test for the configured method, on
    the same cleaned values its `ValueDrift` uses, and its verdict from its threshold in
    `thresholds`; a column without one, or without a value on one side, is not judged and says why.
    `report=False` leaves the report (its HTML and JSON) out, with the same verdicts, about 50 times
    faster: what a replay of a whole year's daily checks needs.
    """
    from include.mlops.compat.evidently import drift_test

    config = config or DriftConfig()
    numeric = [c for c in numeric if c not in config.ignore]
    categorical = [c for c in categorical if c not in config.ignore]
    columns = [*categorical, *numeric]
    missing = [c for c in columns if c not in current.columns or c not in reference.columns]
    if missing:
        raise ValueError(f"columns missing from the current or reference data: {', '.join(missing)}")
    frames = [
        sample(frame, config.sample_rows, config.seed)[columns].reset_index(drop=True) for frame in (current, reference)
    ]
    # A column with no value on one side has no distribution to compare (a feed that went silent):
    # it is listed as not judged, and Evidently, which refuses it, never sees it.
    not_judged = {}
    for column in columns:
        side = [name for name, frame in zip(("window", "reference"), frames, strict=True) if frame[column].isna().all()]
        if side:
            not_judged[column] = f"no value in the {' or the '.join(side)}"
        elif column not in thresholds:
            not_judged[column] = "no calibrated threshold"
    numeric = [c for c in numeric if c not in not_judged]
    categorical = [c for c in categorical if c not in not_judged]
    columns = [*categorical, *numeric]
    methods = _methods(config, numeric, categorical, thresholds)
    verdicts = []
    for column in columns:
        (method, threshold), is_numeric = methods[column], column in numeric
        ref, cur = (_clean(frame[column], is_numeric) for frame in (frames[1], frames[0]))
        score, drifted = drift_test(ref, cur, is_numeric, method)(threshold)
        verdicts.append(ColumnDrift(column, method, threshold, score, drifted))
    return DriftResult(
        columns=verdicts,
        current_rows=len(current),
        reference_rows=len(reference),
        sampled_rows=(min(len(current), config.sample_rows), min(len(reference), config.sample_rows)),
        snapshot=_report(frames, methods, numeric, categorical) if report and columns else None,
        not_judged=not_judged,
    )


def _methods(
    config: DriftConfig, numeric: list[str], categorical: list[str], thresholds: Mapping[str, float]
) -> dict[str, tuple[str, float]]:
    """Each column's drift method and threshold."""
    return {c: (config.categorical_method, float(thresholds[c])) for c in categorical} | {
        c: (config.numeric_method, float(thresholds[c])) for c in numeric
    }


def _clean(values: pd.Series, numeric: bool) -> pd.Series:
    """A column as Evidently's drift calculation reads it: no missing or infinite values."""
    import numpy as np
    import pandas as pd

    if numeric:
        values = pd.to_numeric(values)
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _report(
    frames: list[pd.DataFrame], methods: Mapping[str, tuple[str, float]], numeric: list[str], categorical: list[str]
) -> object:
    """Evidently's drift report (current first) of the sampled frames: one `ValueDrift` per column,
    each with its method and its own threshold, so that its tests are the check's verdicts."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    columns = [*categorical, *numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    current, reference = (Dataset.from_pandas(frame[columns], definition) for frame in frames)
    report = Report(
        [ValueDrift(column=c, method=methods[c][0], threshold=methods[c][1]) for c in columns], include_tests=True
    )
    return report.run(current, reference)


def classification_quality(labelled: pd.DataFrame, target: str, probability: str) -> object:
    """Evidently's quality report of a binary classifier on its labelled predictions."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import LogLoss, Precision, Recall, RocAuc

    definition = DataDefinition(
        numerical_columns=[probability],
        classification=[BinaryClassification(target=target, prediction_probas=probability, pos_label=1)],
    )
    data = Dataset.from_pandas(labelled[[target, probability]].reset_index(drop=True), definition)
    return Report([RocAuc(), LogLoss(), Precision(), Recall()]).run(data, None)
