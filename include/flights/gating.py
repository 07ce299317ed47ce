"""The promotion gate for the flights model: gather the gate's inputs, decide, record, promote.

`evaluate_candidate` scores a candidate version and the champion (alias `champion`) on the same
out-of-time evaluation set, applies the rules of `include.mlops.gate`, and records the judgement.

**The evaluation set** is built through the feature store: the flights of the `days` whole UTC days
before the gate's time whose labels landed by then, never reaching back before the candidate's
`evaluation_start`, the end of its validation data (`include.flights.training.split` holds the last
days of the training window out for this). No row that fitted the candidate or chose it among
configurations judges it; the champion, trained earlier, has seen none of them either.

**Every judgement is kept.** A version judged again (a re-run, or a promotion that lost a race)
gets a new folder `gate/<n>/` on its run with `decision.json` and `report.md`; the model version's
tags (`gate.decision`, `gate.reasons`, `gate.report`, ...) describe the latest one and
`gate.judgements` counts them. A judgement that cannot be made (malformed predictions, no
evaluation data) is recorded the same way with the decision `error` and its reason, and
`GateError` is raised: retrying does not help.

`promote` moves the champion to the candidate through the serialized, compare-and-set path of
`include.mlops.registry`; if another promotion won the race since the evaluation, the candidate
is evaluated again against the new champion, once, under the promotion lock, and promoted only
if it passes that too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import features, model, pipeline
from include.mlops import gate, records, registry, tracking
from include.mlops.evaluation import Classifier, positive_probability, relative_latency
from include.mlops.gate import GateError
from include.mlops.lake import Interval
from include.mlops.settings import Settings, rule_set

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).with_name("promotion_rules.yaml")
EVALUATION_DAYS = 7
MIN_EVALUATION_ROWS = 1000
LATENCY_REPEATS = 5
LATENCY_ROWS = 2000  # rows timed per repeat: enough to measure, few enough to repeat


def load_rules(rules: str | Path | Mapping[str, object] | None = None) -> gate.Rules:
    """Rules from a mapping, a YAML file, YAML text, or the project's default file."""
    try:
        return gate.Rules.from_dict(rule_set(rules, DEFAULT_RULES))
    except FileNotFoundError as error:
        raise gate.RulesError(str(error)) from None


def evaluation_set(settings: Settings, end: datetime, not_before: datetime, days: int) -> pd.DataFrame:
    """Labelled flights of the `days` before `end` (not before `not_before`), with their features."""
    window = evaluation_window(end, not_before, days)
    missing = pipeline.days_without_features(settings, window)
    if missing:
        raise GateError(
            f"features missing for {len(missing)} days of the evaluation window {window} ({missing[0]} first)"
        )
    return checked(pipeline.training_set(settings, window, labels_by=end), window)


def evaluation_window(end: datetime, not_before: datetime, days: int) -> Interval:
    """The `days` before `end`, cut so as not to start before `not_before` (the end of the
    candidate's validation data: no row that fitted or chose it may judge it)."""
    start = max(end - timedelta(days=days), not_before)
    if start >= end:
        raise GateError(
            f"no evaluation window: the candidate's training and validation data reach {not_before}, "
            f"not before the gate's time {end}"
        )
    return Interval(start, end)


def checked(frame: pd.DataFrame, window: Interval) -> pd.DataFrame:
    """The evaluation set, if it can judge: enough rows, both classes; `GateError` otherwise."""
    if len(frame) < MIN_EVALUATION_ROWS:
        raise GateError(
            f"too few evaluation rows: {len(frame)} labelled flights in {window}, at least {MIN_EVALUATION_ROWS} needed"
        )
    if frame[model.LABEL].nunique() < 2:
        raise GateError(f"single-class evaluation set: every flight in {window} has the same label")
    frame.attrs["window"] = window.key
    return frame


def evaluation_rows(
    frame: pd.DataFrame, rules: gate.Rules, threshold: float, base_rate: float | None
) -> gate.EvaluationSet:
    """The gate's view of the evaluation set: labels and the slice columns its rules name."""
    columns = rules.slices.columns if rules.slices else ()
    slices = {c: frame[c].astype(object).where(frame[c].notna(), None).to_numpy() for c in columns if c in frame}
    return gate.EvaluationSet(frame[model.LABEL].to_numpy(), slices, threshold, base_rate)


@dataclass(frozen=True)
class Scorer:
    """A model version loaded for the gate: it scores the evaluation set, or says why it cannot."""

    name: str  # how messages name it: "candidate version 7 of flight_delay"
    loaded: Classifier
    inputs: list[str]
    model_mb: float

    def input(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise GateError(f"{self.name} needs columns the evaluation set lacks: {', '.join(missing)}")
        return model.model_input(frame, self.inputs)

    def score(self, x: pd.DataFrame) -> np.ndarray:
        try:
            return positive_probability(self.loaded, x)
        except Exception as error:  # whatever the model raises, the gate names the model
            raise GateError(f"{self.name} could not score the evaluation set: {error}") from None


def operational(
    candidate: Scorer, champion: Scorer | None, frame: pd.DataFrame, unserved: list[str]
) -> gate.Operational:
    """The candidate's size and served inputs, and its scoring time against the champion's, both
    timed here on the same rows (`relative_latency`)."""
    if champion is None:
        return gate.Operational(candidate.model_mb, unserved_inputs=tuple(unserved))
    rows = frame.head(LATENCY_ROWS)
    x_new, x_old = candidate.input(rows), champion.input(rows)
    ratio, seconds = relative_latency(
        lambda: candidate.score(x_new), lambda: champion.score(x_old), repeats=LATENCY_REPEATS
    )
    per_10k = seconds * 1000 * 10_000 / len(rows)
    return gate.Operational(candidate.model_mb, ratio, per_10k, tuple(unserved))


def evaluate_candidate(
    settings: Settings,
    version: int,
    at: datetime,
    rules: gate.Rules | None = None,
    days: int = EVALUATION_DAYS,
    context: Mapping[str, str] | None = None,
) -> records.GateJudgement:
    """Gate `version` of the settings' model against the champion as of `at`; record the judgement
    and return it (the outcome, the reasons, the versions compared, where the report is). Raises
    `GateError`, after recording it, when the judgement cannot be made."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    rules = rules or load_rules()
    name = settings.model_name
    tracking.connect(settings)
    client = MlflowClient()
    try:
        candidate = client.get_model_version(name, str(version))
    except MlflowException:
        raise GateError(f"{name} has no version {version}") from None
    champion = registry.alias_version(client, name, registry.CHAMPION)
    if champion == version:
        raise GateError(f"version {version} of {name} is already the champion")
    run = client.get_run(candidate.run_id)
    number = records.GateJudgement.judgements(candidate) + 1
    judgement = records.GateJudgement(
        model=name,
        candidate_version=version,
        champion_version=champion,
        outcome="error",
        reasons=(),
        decided_at=at,
        judged_at=datetime.now(UTC).replace(microsecond=0),
        judgement=number,
        context=dict(context or {}),
        candidate_run_id=candidate.run_id,
        model_version_url=settings.model_version_url(name, version),
    )
    judgement = replace(
        judgement, report_url=settings.run_url(run.info.experiment_id, candidate.run_id, judgement.report_path)
    )
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        try:
            trained = records.CandidateRun.read(run)
        except records.RecordError as error:
            raise GateError(f"version {version} of {name}: {error}") from None
        frame = evaluation_set(settings, at, trained.evaluation_start, days)
        seconds["evaluation_set"] = time.perf_counter() - started

        started = time.perf_counter()
        new = _scorer(name, version, candidate.source, "candidate")
        old = None
        if champion is not None:
            old = _scorer(name, champion, client.get_model_version(name, str(champion)).source, "champion")
        cand_p = new.score(new.input(frame))
        champ_p = old.score(old.input(frame)) if old else None
        facts = operational(new, old, frame, _unserved(settings, name, version, new.inputs))
        seconds["scoring"] = time.perf_counter() - started

        started = time.perf_counter()
        rows = evaluation_rows(frame, rules, trained.threshold, trained.train_positive_rate)
        decision = gate.decide(
            rules,
            rows,
            gate.Predictions(new.name, cand_p),
            gate.Predictions(old.name, champ_p) if old else None,
            facts,
        )
        seconds["deciding"] = time.perf_counter() - started
    except GateError as error:
        failed = replace(judgement, reasons=(str(error),))
        failed = replace(failed, report=report(failed, None))
        failed.write(client, {"rules": rules.to_dict(), "decision": None, "operational": None})
        raise

    started = time.perf_counter()
    judgement = replace(
        judgement,
        outcome=decision.outcome,
        reasons=tuple(decision.reasons),
        not_checked=tuple(decision.not_checked),
        evaluation_window=frame.attrs["window"],
        evaluation_rows=len(frame),
        metrics=decision.metrics,
    )
    judgement = replace(judgement, report=report(judgement, decision))
    judgement.write(client, {"rules": rules.to_dict(), "decision": decision.to_dict(), "operational": asdict(facts)})
    seconds["recording"] = time.perf_counter() - started
    log.info("Gate: %s version %s vs champion %s: %s %s", name, version, champion, decision.outcome, decision.reasons)
    return replace(judgement, seconds=seconds)


def promote(
    settings: Settings,
    gated: records.GateJudgement,
    at: datetime,
    rules: gate.Rules | None = None,
    context: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Make the gated candidate the champion, if the gate passed it and the champion it was judged
    against is still the champion; otherwise judge it again against the new one, once."""
    if not gated.passed:
        raise ValueError(f"version {gated.candidate_version} was not passed by the gate: it cannot be promoted")
    name, version = settings.model_name, gated.candidate_version
    with registry.promotion_lock(settings, name):
        try:
            move = registry.move_champion(
                settings, name, version, gated.champion_version, "promote", _reason(gated), context
            )
            return {"promoted": True, "move": move.to_dict(), "gate": gated.to_dict()}
        except registry.ChampionChangedError as error:
            log.warning("%s; evaluating version %s again against the new champion", error, version)
            aborted = str(error)
        regated = evaluate_candidate(settings, version, at, rules, context=context)
        if not regated.passed:
            return {"promoted": False, "aborted": aborted, "gate": regated.to_dict()}
        move = registry.move_champion(
            settings, name, version, regated.champion_version, "promote", _reason(regated), context
        )
        return {"promoted": True, "aborted": aborted, "move": move.to_dict(), "gate": regated.to_dict()}


def _reason(gated: records.GateJudgement) -> str:
    return f"promotion gate: {gated.outcome} against {_versions(gated.champion_version)}"


def record_approval(settings: Settings, gated: records.GateJudgement, answer: records.Answer) -> None:
    """Note on the candidate's version how the person asked to approve its promotion answered, when
    it was not promoted for it (an approved promotion carries the same in its audit entry)."""
    from mlflow import MlflowClient

    tracking.connect(settings)
    answer.write_on_version(MlflowClient(), settings.model_name, gated.candidate_version)


def report(judgement: records.GateJudgement, decision: gate.Decision | None) -> str:
    """The judgement as Markdown, for a person reading it months later."""
    verdicts = {"promote": "PROMOTE", "first-model": "PROMOTE (first model)", "reject": "REJECT", "error": "ERROR"}
    lines = [
        f"# Promotion gate: {judgement.model} version {judgement.candidate_version}",
        "",
        f"**Decision: {verdicts[judgement.outcome]}** (judgement {judgement.judgement} of this version)",
        "",
        f"- Compared with: {_versions(judgement.champion_version)}",
    ]
    if judgement.evaluation_window:
        days = Interval.from_key(judgement.evaluation_window).label
        lines.append(f"- Evaluation set: {judgement.evaluation_rows} labelled flights departing {days}")
    lines.append(f"- Judged at: {_when(judgement.judged_at)}, on the data as of {_when(judgement.decided_at)}")
    if judgement.airflow_run_id:
        lines.append(f"- Airflow: {judgement.airflow_dag_id} / {judgement.airflow_run_id}")
    if decision is None:
        return "\n".join([*lines, "", "## Why no decision was made", "", *[f"- {r}" for r in judgement.reasons]]) + "\n"
    if decision.reasons:
        lines += ["", "## Why it was rejected", "", *[f"- {reason}" for reason in decision.reasons]]
    slices = [c for c in decision.checks if c.kind == "slice"]
    others = [c for c in decision.checks if c.kind != "slice"]
    lines += ["", "## Checks", "", "| kind | check | verdict | detail |", "|---|---|---|---|"]
    lines += [_row(c) for c in others]
    failed = [c for c in slices if not c.passed]
    lines += [_row(c) for c in failed]
    if slices:
        lines.append(f"| slice | {len(slices)} slices checked | {len(slices) - len(failed)} passed | |")
    if decision.not_checked:
        lines += ["", "## Not checked", "", *[f"- {item}" for item in decision.not_checked]]
    return "\n".join(lines) + "\n"


def _row(check: gate.Check) -> str:
    return (
        f"| {check.kind} | {check.name} | {'pass' if check.passed else '**FAIL**'} | {check.detail.replace('|', '/')} |"
    )


def _scorer(name: str, version: int, source: str, role: str) -> Scorer:
    loaded, inputs, model_mb = tracking.load_model(source)
    return Scorer(f"{role} version {version} of {name}", loaded, inputs, model_mb)


def _unserved(settings: Settings, name: str, version: int, inputs: list[str]) -> list[str]:
    """The model's inputs that neither its feature service nor the request itself provides."""
    from feast.mlflow_integration.model_resolver import FeastMlflowModelResolutionError

    from include.mlops.feature_store import load_store, model_feature_service

    try:
        service = model_feature_service(load_store(settings), settings.tracking_uri, name, version)
    except FeastMlflowModelResolutionError as error:
        raise GateError(f"version {version} of {name}: {error}") from None
    served = {f"{p.name_to_use()}__{f.name}" for p in service.feature_view_projections for f in p.features}
    served |= {derived for derived, needs in features.REQUEST_TIME.items() if needs in served}
    request = set(pipeline.REQUEST_COLUMNS)
    return [c for c in inputs if c not in served and c not in request]


def _when(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M} UTC"


def _versions(version: object) -> str:
    return "no champion" if version is None else f"champion version {version}"
