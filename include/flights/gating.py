"""The promotion gate for the flights model: gather the gate's inputs, decide, record, promote.

`evaluate_candidate` scores a candidate version and the champion (alias `champion`) on the same
out-of-time evaluation set, applies the rules of `include.mlops.gate`, and records the decision:
`gate/decision.json` and `gate/report.md` on the candidate's run, and tags on the model version
(`gate.decision`, `gate.reasons`, `gate.champion_version`, ...).

The evaluation set is built through the feature store from the most recent labelled window:
the flights of the `days` whole UTC days before the gate's time whose labels landed by then. It
never reaches back before the candidate's validation cutoff, so that no row the candidate was
fitted on is used to judge it.

`promote` moves the champion to the candidate through the serialized, compare-and-set path of
`include.mlops.registry`; if another promotion won the race since the evaluation, the candidate
is evaluated again against the new champion, once, under the promotion lock, and promoted only
if it passes that too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import model, pipeline
from include.mlops import gate, registry, tracking
from include.mlops.evaluation import evaluate
from include.mlops.lake import Interval
from include.mlops.settings import Settings, rule_set

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).with_name("promotion_rules.yaml")
EVALUATION_DAYS = 7
MIN_EVALUATION_ROWS = 1000


class GateError(RuntimeError):
    """The gate cannot decide (no evaluation data, an unknown version); the message says why."""


def load_rules(rules: str | Path | Mapping[str, object] | None = None) -> gate.Rules:
    """Rules from a mapping, a YAML file, YAML text, or the project's default file."""
    try:
        return gate.Rules.from_dict(rule_set(rules, DEFAULT_RULES))  # type: ignore[arg-type]
    except FileNotFoundError as error:
        raise gate.RulesError(str(error)) from None


def evaluation_set(settings: Settings, end: datetime, not_before: datetime | None, days: int) -> pd.DataFrame:
    """Labelled flights of the `days` before `end` (not before `not_before`), with their features."""
    window = evaluation_window(end, not_before, days)
    missing = pipeline.days_without_features(settings, window)
    if missing:
        raise GateError(
            f"features missing for {len(missing)} days of the evaluation window {window} ({missing[0]} first)"
        )
    return checked(pipeline.training_set(settings, window, labels_by=end), window)


def evaluation_window(end: datetime, not_before: datetime | None, days: int) -> Interval:
    """The `days` before `end`, cut so as not to start before `not_before` (the candidate's
    validation cutoff: no row it was fitted on may judge it)."""
    start = end - timedelta(days=days)
    if not_before is not None and not_before > start:
        start = not_before
    if start >= end:
        raise GateError(f"no evaluation window: the candidate's validation starts {start}, after the gate's time {end}")
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


def evaluate_candidate(
    settings: Settings,
    version: int,
    at: datetime,
    rules: gate.Rules | None = None,
    days: int = EVALUATION_DAYS,
    context: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Gate `version` of the settings' model against the champion as of `at`; record the decision.

    Returns what downstream tasks need: the outcome, the reasons, the versions compared and where
    the report is.
    """
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
    cutoff = run.data.params.get("validation_cutoff")
    threshold = float(run.data.params.get("threshold", 0.5))
    started = time.perf_counter()
    frame = evaluation_set(settings, at, datetime.fromisoformat(cutoff) if cutoff else None, days)
    labels = frame[model.LABEL].to_numpy()
    evaluation_seconds = time.perf_counter() - started

    started = time.perf_counter()
    cand_p, facts = _score(settings, name, version, candidate.source, frame)
    cand_scores = scores(frame, cand_p, threshold)
    champ_scores = None
    if champion is not None:
        champion_source = client.get_model_version(name, str(champion)).source
        champ_p, _ = _score(settings, name, champion, champion_source, frame)
        champ_scores = scores(frame, champ_p, threshold)
    scoring_seconds = time.perf_counter() - started

    started = time.perf_counter()
    decision = gate.decide(rules, labels, cand_scores, champ_scores, facts)
    deciding_seconds = time.perf_counter() - started

    started = time.perf_counter()
    result = {
        "model": name,
        "candidate_version": version,
        "champion_version": champion,
        "outcome": decision.outcome,
        "reasons": decision.reasons,
        "evaluation_window": frame.attrs["window"],
        "evaluation_rows": len(frame),
        "decided_at": at.isoformat(),
        "candidate_run_id": candidate.run_id,
        "model_version_url": settings.model_version_url(name, version),
        "report_url": settings.run_url(run.info.experiment_id, candidate.run_id) + "/artifacts/gate/report.md",
        **dict(context or {}),
    }
    record = result | {"rules": rules.to_dict(), "decision": decision.to_dict(), "operational": facts.__dict__}
    client.log_text(candidate.run_id, json.dumps(record, indent=2, default=str), "gate/decision.json")
    client.log_text(candidate.run_id, report(result, decision), "gate/report.md")
    tags = {
        "gate.decision": decision.outcome,
        "gate.reasons": "; ".join(decision.reasons)[:5000] or "every check passed",
        "gate.champion_version": "none" if champion is None else str(champion),
        "gate.evaluated_at": at.isoformat(),
        "gate.evaluation_window": frame.attrs["window"],
        **{f"gate.{key}": str(value) for key, value in (context or {}).items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    recording_seconds = time.perf_counter() - started
    result["seconds"] = {
        "evaluation_set": evaluation_seconds,
        "scoring": scoring_seconds,
        "deciding": deciding_seconds,
        "recording": recording_seconds,
    }
    log.info("Gate: %s version %s vs champion %s: %s %s", name, version, champion, decision.outcome, decision.reasons)
    return result


def promote(
    settings: Settings,
    gated: Mapping[str, object],
    at: datetime,
    rules: gate.Rules | None = None,
    context: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Make the gated candidate the champion, if the gate passed it and the champion it was judged
    against is still the champion; otherwise judge it again against the new one, once."""
    if gated["outcome"] == "reject":
        raise ValueError(f"version {gated['candidate_version']} was rejected by the gate: it cannot be promoted")
    name, version = settings.model_name, int(gated["candidate_version"])  # type: ignore[arg-type]
    reason = f"promotion gate: {gated['outcome']} against {_versions(gated['champion_version'])}"
    expected = gated["champion_version"]
    with registry.promotion_lock(settings, name):
        try:
            move = registry.move_champion(settings, name, version, expected, "promote", reason, context)  # type: ignore[arg-type]
            return {"promoted": True, "move": move.to_dict(), "gate": dict(gated)}
        except registry.ChampionChangedError as error:
            log.warning("%s; evaluating version %s again against the new champion", error, version)
            aborted = str(error)
        regated = evaluate_candidate(settings, version, at, rules, context=context)
        if regated["outcome"] == "reject":
            return {"promoted": False, "aborted": aborted, "gate": regated}
        reason = f"promotion gate: {regated['outcome']} against {_versions(regated['champion_version'])}"
        move = registry.move_champion(
            settings,
            name,
            version,
            regated["champion_version"],
            "promote",
            reason,
            context,  # type: ignore[arg-type]
        )
        return {"promoted": True, "aborted": aborted, "move": move.to_dict(), "gate": regated}


def report(result: Mapping[str, object], decision: gate.Decision) -> str:
    """The decision as Markdown, for a person reading it months later."""
    verdicts = {"promote": "PROMOTE", "first-model": "PROMOTE (first model)", "reject": "REJECT"}
    lines = [
        f"# Promotion gate: {result['model']} version {result['candidate_version']}",
        "",
        f"**Decision: {verdicts[decision.outcome]}**",
        "",
        f"- Compared with: {_versions(result['champion_version'])}",
        f"- Evaluation set: {result['evaluation_rows']} labelled flights departing {_days(result)}",
        f"- Decided at: {result['decided_at']}",
    ]
    if "airflow.run_id" in result:
        lines.append(f"- Airflow: {result.get('airflow.dag_id')} / {result['airflow.run_id']}")
    if decision.reasons:
        lines += ["", "## Why it was rejected", "", *[f"- {reason}" for reason in decision.reasons]]
    lines += ["", "## Checks", "", "| kind | check | verdict | detail |", "|---|---|---|---|"]
    lines += [
        f"| {c.kind} | {c.name} | {'pass' if c.passed else '**FAIL**'} | {c.detail.replace('|', '/')} |"
        for c in decision.checks
    ]
    return "\n".join(lines) + "\n"


def _score(
    settings: Settings, name: str, version: int, source: str, frame: pd.DataFrame
) -> tuple[np.ndarray, gate.Operational]:
    """Probabilities of one model version on `frame`, with its latency, size and served inputs."""
    loaded, inputs, model_mb = tracking.load_model(source)
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise GateError(f"version {version} of {name} needs columns the evaluation set lacks: {', '.join(missing)}")
    x = model.model_input(frame, inputs)
    started = time.perf_counter()
    p = loaded.predict_proba(x)[:, 1]
    latency = (time.perf_counter() - started) * 1000 * 10_000 / len(frame)
    return p, gate.Operational(latency, model_mb, tuple(_unserved(settings, name, version, inputs)))


def _unserved(settings: Settings, name: str, version: int, inputs: list[str]) -> list[str]:
    """The model's inputs that neither its feature service nor the request itself provides."""
    from feast.errors import FeatureServiceNotFoundException

    from include.mlops.feature_store import feature_service_name, load_store

    try:
        service = load_store(settings).get_feature_service(feature_service_name(name, version))
    except FeatureServiceNotFoundException:
        raise GateError(
            f"version {version} of {name} has no feature service {feature_service_name(name, version)}"
        ) from None
    served = {f"{p.name_to_use()}__{f.name}" for p in service.feature_view_projections for f in p.features}
    request = set(pipeline.REQUEST_COLUMNS)
    return [c for c in inputs if c not in served and c not in request]


def scores(frame: pd.DataFrame, p: np.ndarray, threshold: float) -> gate.Scores:
    """A model's scores on the evaluation set, overall and per slice, as the gate reads them."""
    evaluation = evaluate(frame[model.LABEL].to_numpy(), p, threshold, {s: frame[s] for s in model.SLICES})
    return gate.Scores(evaluation.overall, evaluation.slices, p)


def _days(result: Mapping[str, object]) -> str:
    window = Interval.from_key(str(result["evaluation_window"]))
    return f"from {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC (end excluded)"


def _versions(version: object) -> str:
    return "no champion" if version is None else f"champion version {version}"
