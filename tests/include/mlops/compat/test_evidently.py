"""Evidently's drift tests under `evidently.legacy` (include.mlops.compat.evidently): the score is
the one Evidently's own report gives the column with the same method and threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.mlops.compat.evidently import drift_test

RNG = np.random.default_rng(0)
REFERENCE = pd.DataFrame({"x": RNG.normal(0, 1, 2000), "c": RNG.choice(["a", "b", "c"], 2000, p=[0.5, 0.3, 0.2])})
CURRENT = pd.DataFrame({"x": RNG.normal(0.2, 1, 2000), "c": RNG.choice(["a", "b", "c"], 2000, p=[0.3, 0.3, 0.4])})


@pytest.mark.parametrize(
    ("column", "numeric", "method", "threshold"), [("x", True, "wasserstein", 0.1), ("c", False, "psi", 0.1)]
)
def test_a_columns_score_is_the_one_evidentlys_report_gives(
    column: str, numeric: bool, method: str, threshold: float
) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    score, drifted = drift_test(REFERENCE[column], CURRENT[column], numeric, method)(threshold)
    definition = DataDefinition(
        numerical_columns=[column] if numeric else [], categorical_columns=[] if numeric else [column]
    )
    current, reference = (Dataset.from_pandas(frame[[column]], definition) for frame in (CURRENT, REFERENCE))
    snapshot = Report([ValueDrift(column=column, method=method, threshold=threshold)]).run(current, reference)
    [metric] = snapshot.dict()["metrics"]
    assert score == pytest.approx(metric["value"])
    assert drifted == (score >= threshold)
