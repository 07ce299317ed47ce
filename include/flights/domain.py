"""The flights domain, as the generic loop asks for it (`include.mlops.domain.Domain`).

Named by the setting `MLOPS_DOMAIN` (its default): the operators, the MLOps view and the settings
reach the flights model's gate, drift check, scorer and feature days only through `DOMAIN`, so
that they serve another model as well. Imports are inside the methods: the settings load this
module in every task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import features

if TYPE_CHECKING:
    from include.flights.inference import FlightScorer
    from include.mlops.domain import Rules
    from include.mlops.drift import TrainingRuns
    from include.mlops.lake import Interval
    from include.mlops.records import DriftCheck, GateJudgement
    from include.mlops.settings import Settings

FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"


class Flights:
    model_name = "flight_delay"
    feature_repo = FEATURE_REPO
    feature_step = features.STEP

    def judge(
        self, settings: Settings, version: int, at: datetime, rules: Rules, days: int, context: Mapping[str, str]
    ) -> GateJudgement:
        from include.flights import gating

        return gating.evaluate_candidate(settings, version, at, gating.load_rules(rules), days, context)

    def check(
        self,
        settings: Settings,
        at: datetime,
        days: int,
        rules: Rules,
        training: TrainingRuns | None,
        context: Mapping[str, str],
    ) -> DriftCheck:
        from include.flights import monitoring

        return monitoring.check(settings, at, days, monitoring.load_rules(rules), training, context)

    def scorer(self, settings: Settings) -> FlightScorer:
        from include.flights.inference import FlightScorer

        return FlightScorer(settings)

    def feature_days(self, settings: Settings, window: Interval) -> Interval:
        from include.flights import pipeline

        return pipeline.feature_days(settings, window)

    def feature_spans(self, settings: Settings) -> list[Interval]:
        from include.mlops.lake import Lake

        return Lake(settings.lake_dir).spans("features", features.COVERAGE_VIEW)

    def missing_feature_days(self, settings: Settings, days: Interval) -> list[Interval]:
        from include.mlops.lake import Lake

        return Lake(settings.lake_dir).missing_days("features", features.COVERAGE_VIEW, days)


DOMAIN = Flights()
