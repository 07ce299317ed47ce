"""Drift and quality reports with Evidently 0.7, and the per-column verdicts the drift policy needs.

`data_drift` judges each column with Evidently's statistical test for its method, on the values
Evidently's `ValueDrift` metric reads, and builds the report: one `ValueDrift` per column (plus
`DriftedColumnsCount`), current first, whose scores and test results are the same verdicts (a test
holds them to it). Without the report (`report=False`) a check costs a fiftieth. Each column's method and
threshold are fixed by `DriftConfig` rather than left to Evidently's automatic choice, which
switches to K-S p-values below 1,000 non-null rows: on the flights data that flagged two random
halves of the same week as drifted in sparse columns. The defaults are the statistics Evidently
itself uses on large samples: the Wasserstein distance normed by the reference's standard
deviation for numeric columns and the Jensen-Shannon distance for categorical ones, both at 0.1.

Evidently builds its plots while it computes, about 0.13 s per column whatever the data size, and
its computation grows with the rows; windows larger than `sample_rows` are sampled (seeded, so a
rerun gives the same verdicts). How that size was chosen: `bench/drift.py` measures the drift
score of two disjoint samples of the same data (the sampling noise) for several sizes; at 10,000
rows a side the noise stays below half the 0.1 threshold and the verdicts match the full data's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class DriftConfigError(ValueError):
    """The drift report's configuration is malformed; the message names the problem."""


@dataclass(frozen=True)
class DriftConfig:
    numeric_method: str = "wasserstein"
    numeric_threshold: float = 0.1
    categorical_method: str = "jensenshannon"
    categorical_threshold: float = 0.1
    sample_rows: int = 10_000
    seed: int = 0
    ignore: tuple[str, ...] = ()  # columns not monitored (calendar columns differ by construction)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if self.sample_rows < 100:
            raise DriftConfigError(f"sample_rows must be at least 100, got {self.sample_rows}")
        if min(self.numeric_threshold, self.categorical_threshold) <= 0:
            raise DriftConfigError("drift thresholds must be positive")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DriftConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise DriftConfigError(f"unknown drift report settings: {', '.join(sorted(unknown))}")
        return cls(**data)  # type: ignore[arg-type]

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
    empty: list[str]  # columns without a value in the current or the reference sample: not judged

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
    config: DriftConfig | None = None,
    report: bool = True,
) -> DriftResult:
    """The drift of every monitored column of `current` against `reference`, and Evidently's report.

    Each column's score and verdict come from Evidently's own statistical test for the configured
    method, on the same cleaned values its `ValueDrift` metric uses. `report=False` leaves the
    report (its HTML and JSON) out, with the same verdicts, about 50 times faster: what a replay of
    a whole year's daily checks needs.
    """
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

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
    # A column with no value on one side has no distribution to compare (a sparse sensor that
    # reported nothing for days): it is listed as not judged, and Evidently, which refuses it, never sees it.
    empty = [c for c in columns if any(frame[c].isna().all() for frame in frames)]
    numeric, categorical = [c for c in numeric if c not in empty], [c for c in categorical if c not in empty]
    columns = [*categorical, *numeric]
    if not columns:
        raise ValueError("no monitored column has values in both the current and the reference data")
    methods = _methods(config, numeric, categorical)
    verdicts = []
    for column in columns:
        (method, threshold), is_numeric = methods[column], column in numeric
        kind = ColumnType.Numerical if is_numeric else ColumnType.Categorical
        ref, cur = (_clean(frame[column], is_numeric) for frame in (frames[1], frames[0]))
        test = get_stattest(ref, cur, kind, method)
        result = test(ref, cur, kind, threshold)
        verdicts.append(ColumnDrift(column, method, threshold, float(result.drift_score), bool(result.drifted)))
    return DriftResult(
        columns=verdicts,
        current_rows=len(current),
        reference_rows=len(reference),
        sampled_rows=(min(len(current), config.sample_rows), min(len(reference), config.sample_rows)),
        snapshot=_report(frames, numeric, categorical, config) if report else None,
        empty=empty,
    )


def _methods(config: DriftConfig, numeric: list[str], categorical: list[str]) -> dict[str, tuple[str, float]]:
    """Each column's drift method and threshold."""
    return {c: (config.categorical_method, config.categorical_threshold) for c in categorical} | {
        c: (config.numeric_method, config.numeric_threshold) for c in numeric
    }


def _clean(values: pd.Series, numeric: bool) -> pd.Series:
    """A column as Evidently's drift calculation reads it: no missing or infinite values."""
    import numpy as np
    import pandas as pd

    if numeric:
        values = pd.to_numeric(values)
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _report(frames: list[pd.DataFrame], numeric: list[str], categorical: list[str], config: DriftConfig) -> object:
    """Evidently's drift report (current first) of the sampled frames: the drifted-columns count and
    one `ValueDrift` per column, each with the configured method and threshold."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    columns = [*categorical, *numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    current, reference = (Dataset.from_pandas(frame[columns], definition) for frame in frames)
    methods = _methods(config, numeric, categorical)
    report = Report(
        [
            DriftedColumnsCount(
                columns=columns,
                num_method=config.numeric_method,
                num_threshold=config.numeric_threshold,
                cat_method=config.categorical_method,
                cat_threshold=config.categorical_threshold,
            ),
            *[ValueDrift(column=c, method=methods[c][0], threshold=methods[c][1]) for c in columns],
        ],
        include_tests=True,
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
