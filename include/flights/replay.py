"""Replay the loop over the real year 2013, beside three simpler policies: does it pay off?

`run` walks the replay clock day by day through 2013 (by default the whole 52-week cycle, from
1 January 2013 to 31 December 2013) and runs four policies on the same days and data:

- **loop**: what the drift DAG does. Each day the champion scores the day's flights; at the end of
  the day the drift check looks at the last `drift_window_days` of its predictions (data quality,
  drift against the weeks before, realised quality of the labels landed by then against the
  champion's first production week); when the drift policy asks for a retrain, a candidate is
  trained on the `training_days` before that moment, the promotion gate judges it against the
  champion on the days after its training and validation data, and it is promoted only if it
  passes. Escalations are counted as the drift DAG sends them, by kind.
- **gated**: the scheduled weekly retrain of `training_pipeline` (every `blind_every_days`), through
  the same gate, without drift checks.
- **static**: the first model, trained on the first `training_days`, never replaced.
- **blind**: retrained every `blind_every_days`, promoted without a gate.

All four start from the same first model (it passes the gate's first-model rules, as
`training_pipeline`'s first run does); scoring starts the day after its training window.

**Calibration and held-out halves.** The drift monitor's thresholds and limits were calibrated on
January to June (`include.flights.calibration`), and the gate's and policy's numbers chosen there;
the summary reports the weeks before `held_out_from` (the calibration half) and from it (the
held-out half, July to December) separately, with the rules frozen.

**The same functions as the DAGs.** Features are built by the feature pipeline's own steps
(ingest, validate, build) into the replay's own lake and Feast repository; the labelled feature
frames come from the same point-in-time join (`pipeline.training_set`). Training splits and fits
with `training.split` and `training.fit`; the gate decides with `gate.decide` on the window
`gating.evaluation_window` describes; the drift check observes with `monitoring.observe` and
decides with `drift.decide`, `drift.escalation` and the drift rules files. What the replay leaves
out changes no decision: Evidently's HTML report, MLflow runs and artifacts for every step, the
Feast online store (batch scoring reads the offline store). A test holds the replay's training sets
to `pipeline.training_set`'s, and the drift verdicts without a report are Evidently's own (a test
of `include.mlops.monitoring` holds them to the report's). `tests/system/test_replay_airflow.py` runs two
weeks through the DAGs themselves, as backfills on Airflow's scheduler, and finds the same drift
decisions, gate outcomes, champions, escalations and probabilities as this replay of the same days.

**Features ahead of the walk.** The features and the labelled frames are built before the walk,
four weeks at a time (`chunk_days`), once for all policies: they do not depend on the policy, and
every row is what was known at its prediction time (the feature pipeline's point-in-time
guarantee). The days before the start that the first day's predictions read
(`pipeline.feature_days`, as training's readiness check asks of the DAGs) are built too, within
the replay clock's cycle: before a cycle's 1 January the clock replays the end of 2013, which is
not the history of those days, so a replay of 2013 from its first day has no lead-in. The walk
itself keeps the clock: at the end of a day only labels that landed before it are used, by the
drift check's quality, the training split and the gate.

**Quality** is measured after the fact, on every flight with its label: per week, the ROC AUC and
log loss of what each policy's champion predicted that week. On the week after each gate verdict,
the **regret** of a promotion (the new champion was worse, in ROC AUC, than the model it replaced)
and the **missed improvement** of a rejection (the candidate would have been better by at least
`missed_margin`) are counted.

**Restartable.** The lake and the frames are kept in the replay folder and skipped when present,
under a digest of the code that makes features (`feature_code_digest`): changed feature code builds
them again. The walk writes a checkpoint (`checkpoint.json` and the predictions so far) every week,
and a run with the same configuration and feature code resumes from it. Models are not kept: each
is trained again from its recorded window when a resumed run needs it, which gives the same model
(seeded, same data).

**Deterministic.** Every model, sample and bootstrap is seeded: two runs give the same numbers.
Only the compute times differ (and the gate's latency ratio, whose verdict is far inside its budget).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import gating, inference, model, monitoring, pipeline, training
from include.flights.clock import Clock
from include.mlops import drift, gate
from include.mlops.evaluation import Classifier, binary_metrics, positive_probability, relative_latency
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

POLICIES = ("loop", "gated", "static", "blind")
GATED = ("loop", "gated")  # the policies whose candidates the gate judges
STAGES = ("scoring", "drift", "training", "gate")
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # "whenever the label lands": the frames keep every label
PREDICTION = inference.PREDICTION
HALVES = ("calibration", "held_out")


@dataclass(frozen=True)
class ReplayConfig:
    start: datetime = datetime(2013, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2013, 12, 31, tzinfo=UTC)  # excluded: 52 weeks, the replay clock's cycle
    held_out_from: datetime = datetime(2013, 7, 1, tzinfo=UTC)  # the rules were calibrated before it
    training_days: int = 56  # the training window, as training_pipeline's default (8 weeks)
    blind_every_days: int = 7
    drift_window_days: int = monitoring.WINDOW_DAYS
    evaluation_days: int = gating.EVALUATION_DAYS
    missed_margin: float = 0.01  # a rejected candidate this much better the week after was a miss
    chunk_days: int = 28  # the features and frames are built four weeks at a time
    model: model.ModelConfig = field(default_factory=model.ModelConfig)

    def __post_init__(self) -> None:
        for name in ("start", "end", "held_out_from"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() != timedelta(0) or value != _midnight(value):
                raise ValueError(f"the replay's {name} must be a UTC midnight, got {value.isoformat()}")
        if self.training_days < 14 or min(self.blind_every_days, self.drift_window_days, self.chunk_days) < 1:
            raise ValueError("training_days must be at least 14, and the other periods at least 1 day")
        if self.first_day + timedelta(days=7) > self.end:
            raise ValueError(
                f"the replay from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} is shorter than the first "
                f"training window ({self.training_days} days) plus one week of scoring"
            )

    @property
    def first_day(self) -> datetime:
        """The first day scored: the day after the first training window."""
        return self.start + timedelta(days=self.training_days)

    def days(self) -> list[datetime]:
        """The days scored, each by its start."""
        return [self.first_day + timedelta(days=n) for n in range((self.end - self.first_day).days)]

    def weeks(self) -> list[Interval]:
        """The weeks quality is measured on (a shorter last one if the days do not divide by 7)."""
        starts = range(0, (self.end - self.first_day).days, 7)
        return [
            Interval(self.first_day + timedelta(days=n), min(self.end, self.first_day + timedelta(days=n + 7)))
            for n in starts
        ]

    def half(self, at: datetime) -> str:
        """The half a week or an event belongs to: the calibration half before the first week that
        starts on or after `held_out_from`, the held-out half from it."""
        boundary = next((w.start for w in self.weeks() if w.start >= self.held_out_from), self.end)
        return "calibration" if at < boundary else "held_out"

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "held_out_from": self.held_out_from.isoformat(),
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fit:
    """A model trained on a window, and what the DAGs record with it."""

    pipe: Classifier
    evaluation_start: datetime
    base_rate: float
    importance: dict[str, float]
    reference: pd.DataFrame  # the training-feature sample, with the model's predictions


@dataclass
class Version:
    """A model a policy trained: where its data came from."""

    number: int
    window: str  # the training window's key
    trained_at: str


@dataclass
class Event:
    """Something a policy did: `retrain` (the drift check asked), `promote`, `reject`, `escalate`
    (`detail` starts with its kind), `incident` (a data-quality incident began), `training-failed`.
    A promotion names the version it replaced and the gate's outcome (none for the blind policy)."""

    at: str
    kind: str
    version: int | None = None
    detail: str = ""
    replaced: int | None = None
    gate: str | None = None


@dataclass
class PolicyState:
    name: str
    champion: int = 0
    champion_since: str = ""  # when the champion started serving
    versions: list[Version] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # the loop's drift checks (drift.PastCheck fields)
    retrains: list[dict] = field(default_factory=list)  # the loop's retrains (drift.Retrain fields)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


def feature_code_digest() -> str:
    """A digest of the code that turns the source into labelled feature rows."""
    from include.feature_repo import definitions
    from include.flights import features, schema, source

    code = [features, pipeline, schema, source, definitions]
    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in code)).hexdigest()[:12]


class Replay:
    """One replay: its folder, configuration and state. `run()` builds what is missing and walks."""

    def __init__(self, folder: Path, config: ReplayConfig | None = None, settings: Settings | None = None) -> None:
        self.folder = folder
        self.config = config or ReplayConfig()
        base = settings or Settings.from_env()
        self.feature_code = feature_code_digest()
        # Its own lake, Feast repository and MLflow files: the replay never touches the running system.
        # 2013 replayed as itself: its dates are the source's own, whatever season the settings replay.
        self.data = replace(
            base, state_dir=folder / "state" / self.feature_code, mlflow_tracking_uri=None, replay_weeks_ahead=0
        )
        self.rules: gate.Rules | None = None  # loaded when the walk starts
        self.drift_rules: monitoring.MonitorRules | None = None
        self.fits: dict[str, Fit] = {}  # by training window
        self.scores: dict[str, tuple[int, np.ndarray]] = {}  # by training window: (first row, probabilities)
        self.frame: pd.DataFrame | None = None
        self.features: list[str] = []
        self.shared_seconds = {"features": 0.0, "frames": 0.0}
        self.state = {name: PolicyState(name) for name in POLICIES}
        self.predictions: dict[str, list[pd.DataFrame]] = {name: [] for name in POLICIES}
        self.day: datetime = self.config.first_day  # the next day to score

    # --- Building the data: the feature pipeline's steps, a chunk at a time -----------------------

    def chunks(self) -> Iterator[Interval]:
        step = timedelta(days=self.config.chunk_days)
        cursor = self.config.start
        while cursor < self.config.end:
            yield Interval(cursor, min(cursor + step, self.config.end))
            cursor += step

    def lead_in(self) -> Interval | None:
        """The days before the start whose features the first day's predictions read, within the
        replay clock's cycle (see the module's docstring); None when there are none."""
        first_day = Interval(self.config.start, self.config.start + timedelta(days=1))
        cycle_start = Clock().cycle_start(self.config.start)
        start = max(pipeline.feature_days(self.data, first_day).start, cycle_start)
        return Interval(start, self.config.start) if start < self.config.start else None

    def build_features(self) -> None:
        """Ingest, validate and build the lead-in's and every chunk's features; what is already
        built is skipped."""
        started = time.perf_counter()
        lead_in = self.lead_in()
        for chunk in [lead_in, *self.chunks()] if lead_in else self.chunks():
            if not Lake(self.data.lake_dir).missing_days("features", "weather", chunk):
                continue  # built by an earlier, interrupted replay
            pipeline.validate_batches(self.data, pipeline.ingest(self.data, chunk))
            pipeline.build_features(self.data, chunk)
            log.info("Replay features of %s built", chunk)
        # Outcomes landing after the last day (the frames read two days past a chunk's end).
        after = Interval(self.config.end, self.config.end + timedelta(days=2))
        pipeline.validate_batches(self.data, pipeline.ingest(self.data, after))
        pipeline.apply_definitions(self.data)
        self.shared_seconds["features"] += time.perf_counter() - started

    def build_frames(self) -> pd.DataFrame:
        """Every flight of the replay with its point-in-time features and its label, a
        chunk at a time through the feature store (kept as Parquet in the replay folder)."""
        import pandas as pd

        started = time.perf_counter()
        folder = self.folder / "frames" / self.feature_code
        folder.mkdir(parents=True, exist_ok=True)
        frames = []
        for chunk in self.chunks():
            path = folder / f"{chunk.key}.parquet"
            if not path.exists():
                frame = pipeline.training_set(self.data, chunk, labels_by=FAR)
                frame.to_parquet(path.with_suffix(".tmp"), index=False)
                path.with_suffix(".tmp").replace(path)
            frames.append(pd.read_parquet(path))
        frame = pd.concat(frames, ignore_index=True).sort_values(["sched_dep_at", "flight_id"], kind="stable")
        self.features = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
        frame[self.features] = model.model_input(frame, self.features)
        self.frame = frame.reset_index(drop=True)
        self.shared_seconds["frames"] += time.perf_counter() - started
        return self.frame

    def rows(self, window: Interval) -> pd.DataFrame:
        """The flights departing in `window`, every label kept (the frame's index is kept)."""
        frame = self.frame
        assert frame is not None
        start, end = frame["sched_dep_at"].searchsorted([window.start, window.end])
        return frame.iloc[start:end]

    def labelled(self, window: Interval, known_by: datetime) -> pd.DataFrame:
        """The flights departing in `window` whose labels landed before `known_by`:
        `pipeline.training_set(window, labels_by=known_by)`, from the frames."""
        rows = self.rows(window)
        return rows[rows["label_at"] < known_by]

    # --- Models ------------------------------------------------------------------------------------

    def fit(self, window: Interval) -> Fit:
        """The model of a training window, as `training_pipeline` trains it: the window's labelled
        flights split by time, fitted, its importances and reference sample kept. Policies training
        on the same window get the same model: it is fitted once."""
        if window.key not in self.fits:
            parts = training.split(self.labelled(window, window.end), window)
            fitted = training.fit(self.config.model, parts.train, parts.validation, self.features)
            reference = training.reference_sample(parts.train, self.features, self.config.model.seed)
            self.fits[window.key] = Fit(
                pipe=fitted.pipe,
                evaluation_start=parts.evaluation_start,
                base_rate=float(parts.train[model.LABEL].mean()),
                importance=training.importance(fitted.pipe, parts.validation, self.features, self.config.model.seed),
                reference=reference.assign(**{PREDICTION: fitted.pipe.predict_proba(reference[self.features])[:, 1]}),
            )
        return self.fits[window.key]

    def train(self, policy: str, window: Interval, at: datetime) -> Version:
        """A candidate of `policy` trained on `window` at `at`."""
        started = time.perf_counter()
        self.fit(window)
        state = self.state[policy]
        version = Version(number=len(state.versions) + 1, window=window.key, trained_at=at.isoformat())
        state.versions.append(version)
        state.seconds["training"] += time.perf_counter() - started
        return version

    def model_of(self, policy: str, number: int) -> Fit:
        """A version's model; trained again from its window if this run has not got it (a resumed
        replay): the same data and seed give the same model."""
        return self.fit(Interval.from_key(self.state[policy].versions[number - 1].window))

    def predict(self, policy: str, number: int, rows: pd.DataFrame) -> np.ndarray:
        """A version's probabilities for `rows` (rows of the frame, from its training window's start
        on), each row scored once per model."""
        key = self.state[policy].versions[number - 1].window
        if key not in self.scores:
            assert self.frame is not None
            first = int(self.frame["sched_dep_at"].searchsorted(Interval.from_key(key).start))
            later = self.frame[self.features].iloc[first:]
            self.scores[key] = (first, positive_probability(self.model_of(policy, number).pipe, later))
        first, probabilities = self.scores[key]
        index = rows.index.to_numpy() - first
        if len(index) and index.min() < 0:
            raise ValueError(f"version {number} of {policy} asked to score flights before its training window {key}")
        return probabilities[index]

    # --- The walk ----------------------------------------------------------------------------------

    def run(self, on_week: object = None) -> dict[str, object]:
        """Build what is missing, resume or start the walk, and return the summary."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rules, self.drift_rules = gating.load_rules(), monitoring.load_rules()
        self.build_features()
        self.build_frames()
        if not self.resume():
            self.start()
        for day in self.config.days():
            if day < self.day:
                continue
            self.step(day)
            self.day = day + timedelta(days=1)
            if (self.day - self.config.first_day).days % 7 == 0 or self.day == self.config.end:
                self.checkpoint()
                if callable(on_week):
                    on_week(self.day)
        return self.summary()

    def start(self) -> None:
        """The first model, trained on the first window, and the gate's verdict on it."""
        first = self.config.first_day
        window = Interval(self.config.start, first)
        version = Version(number=1, window=window.key, trained_at=first.isoformat())
        for policy in POLICIES:
            self.state[policy] = PolicyState(policy, versions=[version])
        outcome, reasons = self.judge("loop", 1, first)
        if outcome == "reject":
            raise RuntimeError(f"the first model fails the gate's first-model rules: {'; '.join(reasons)}")
        for policy in POLICIES:
            state = self.state[policy]
            state.champion, state.champion_since = 1, first.isoformat()
            state.events.append(Event(first.isoformat(), "promote", 1, "the first model", gate=outcome))

    def step(self, day: datetime) -> None:
        """One day: every champion scores the day's flights; at its end the loop's drift check and
        its retrain if asked, and the weekly retrains of the gated and blind policies."""
        at = day + timedelta(days=1)
        rows = self.rows(Interval(day, at))
        for policy in POLICIES:
            started = time.perf_counter()
            state = self.state[policy]
            scored = rows[["flight_id", "sched_dep_at", "label_at", model.LABEL]].assign(
                **{PREDICTION: self.predict(policy, state.champion, rows), "version": state.champion}
            )
            self.predictions[policy].append(scored)
            state.seconds["scoring"] += time.perf_counter() - started
        self.check(at)
        if (at - self.config.first_day).days % self.config.blind_every_days == 0 and at < self.config.end:
            window = Interval(at - timedelta(days=self.config.training_days), at)
            blind = self.state["blind"]
            version = self.train("blind", window, at)
            blind.events.append(Event(at.isoformat(), "promote", version.number, "weekly", replaced=blind.champion))
            blind.champion, blind.champion_since = version.number, at.isoformat()
            self.retrain_and_judge("gated", at, "weekly")

    def check(self, at: datetime) -> None:
        """The loop's drift check at `at`, and what follows from it."""
        started = time.perf_counter()
        loop = self.state["loop"]
        policy = self.drift_rules.policy
        champion = self.model_of("loop", loop.champion)

        def scored(window: Interval | None) -> pd.DataFrame:
            rows = self.rows(window) if window else champion.reference
            return rows.assign(**{PREDICTION: self.predict("loop", loop.champion, rows)}) if window else rows

        window = Interval(at - timedelta(days=self.config.drift_window_days), at)
        current = scored(window)
        source = monitoring.reference_window(policy, window)
        reference = scored(source)
        production = monitoring.reference_window(replace(policy, reference="production"), window)
        serving_since = datetime.fromisoformat(loop.champion_since)
        first = monitoring.baseline_window(policy, serving_since, window)
        baseline = scored(first) if first else None
        observation, _ = monitoring.observe(
            at,
            current,
            reference,
            current[current["label_at"] < at],
            baseline[baseline["label_at"] < at] if baseline is not None else None,
            self.features,
            champion.importance,
            self.drift_rules,
            report=False,
            baseline_window=first.key if first else "",
            recent=reference if source == production else scored(production),
        )
        past = [drift.PastCheck(**{**c, "at": datetime.fromisoformat(c["at"])}) for c in loop.checks]
        decision = drift.decide(policy, observation, drift.history(past, champion_since=serving_since))
        alert = drift.escalation(policy, decision, at, past, self._retrains(past))
        if decision.action == "incident" and (not past or past[-1].action != "incident"):
            loop.events.append(Event(at.isoformat(), "incident", loop.champion, "; ".join(decision.reasons)))
        if alert:
            loop.events.append(Event(at.isoformat(), "escalate", loop.champion, f"{alert.kind}: {alert.message}"))
        loop.checks.append(
            {
                "at": at.isoformat(),
                "action": decision.action,
                "condition": decision.condition,
                "asked_retrain": decision.action == "retrain",
                "escalated": alert.key if alert else "",
            }
        )
        loop.seconds["drift"] += time.perf_counter() - started
        if decision.action == "retrain":
            loop.events.append(Event(at.isoformat(), "retrain", None, "; ".join(decision.reasons)))
            loop.retrains.append({"triggered_at": at.isoformat(), "outcome": "pending"})
            loop.retrains[-1] |= self.retrain_and_judge("loop", at, "asked by the drift check")

    def retrain_and_judge(self, policy: str, at: datetime, why: str) -> dict[str, object]:
        """Train a candidate on the window before `at`, judge it against the champion, promote it if it
        passes; return what became of it (a `drift.Retrain`'s fields)."""
        state = self.state[policy]
        window = Interval(at - timedelta(days=self.config.training_days), at)
        try:
            version = self.train(policy, window, at)
        except training.TrainingDataError as error:
            state.events.append(Event(at.isoformat(), "training-failed", None, str(error)))
            return {"outcome": "error"}
        outcome, reasons = self.judge(policy, version.number, at)
        decided = {"version": version.number, "decided_at": at.isoformat(), "outcome": outcome}
        if outcome in ("reject", "error"):
            state.events.append(Event(at.isoformat(), "reject", version.number, "; ".join(reasons), gate=outcome))
            return decided
        state.events.append(
            Event(
                at.isoformat(),
                "promote",
                version.number,
                f"{why}: passed the gate",
                replaced=state.champion,
                gate=outcome,
            )
        )
        state.champion, state.champion_since = version.number, at.isoformat()
        return decided

    def _retrains(self, past: list[drift.PastCheck]) -> list[drift.Retrain]:
        retrains = []
        for found in self.state["loop"].retrains:
            triggered = datetime.fromisoformat(found["triggered_at"])
            decided = datetime.fromisoformat(found["decided_at"]) if found.get("decided_at") else None
            judged = drift.judged_since(past, decided) + 1 if decided and found["outcome"] != "reject" else 0
            retrains.append(drift.Retrain(triggered, found["outcome"], found.get("version"), decided, judged))
        return retrains

    def judge(self, policy: str, number: int, at: datetime) -> tuple[str, list[str]]:
        """The promotion gate on `number` against the policy's champion, as `gating.evaluate_candidate`
        judges a version: same window, same rules, same decision function."""
        started = time.perf_counter()
        state = self.state[policy]
        candidate = self.model_of(policy, number)
        champion = state.champion if state.champion and state.champion != number else None
        try:
            window = gating.evaluation_window(at, candidate.evaluation_start, self.config.evaluation_days)
            frame = gating.checked(self.labelled(window, at).copy(), window)
            cand_p = self.predict(policy, number, frame)
            champ_p = self.predict(policy, champion, frame) if champion else None
            facts = self._operational(policy, number, champion, frame)
            rows = gating.evaluation_rows(frame, self.rules, training.DEFAULT_THRESHOLD, candidate.base_rate)
            decision = gate.decide(
                self.rules,
                rows,
                gate.Predictions(f"candidate version {number}", cand_p),
                gate.Predictions(f"champion version {champion}", champ_p) if champion else None,
                facts,
            )
        except gate.GateError as error:
            state.seconds["gate"] += time.perf_counter() - started
            return "error", [str(error)]
        state.seconds["gate"] += time.perf_counter() - started
        return decision.outcome, decision.reasons

    def _operational(self, policy: str, number: int, champion: int | None, frame: pd.DataFrame) -> gate.Operational:
        """The size of the candidate's model (pickled: the replay keeps its models in memory) and its
        scoring time against the champion's, timed here as the gate times them."""
        new = self.model_of(policy, number).pipe
        size_mb = len(pickle.dumps(new)) / 1e6
        if champion is None:
            return gate.Operational(size_mb)
        old = self.model_of(policy, champion).pipe
        x = frame[self.features].head(gating.LATENCY_ROWS)
        ratio, seconds = relative_latency(
            lambda: new.predict_proba(x), lambda: old.predict_proba(x), gating.LATENCY_REPEATS
        )
        return gate.Operational(size_mb, ratio, seconds * 1000 * 10_000 / len(x))

    # --- Checkpoints -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        import pandas as pd

        folder = self.folder / "checkpoint"
        folder.mkdir(parents=True, exist_ok=True)
        for policy, parts in self.predictions.items():
            if parts:
                frame = pd.concat(parts, ignore_index=True)
                self.predictions[policy] = [frame]
                frame.to_parquet(folder / f"{policy}.tmp", index=False)
                (folder / f"{policy}.tmp").replace(folder / f"{policy}.parquet")
        state = {
            "config": self.config.digest(),
            "feature_code": self.feature_code,
            "day": self.day.isoformat(),
            "policies": {name: asdict(s) for name, s in self.state.items()},
        }
        (folder / "state.tmp").write_text(json.dumps(state, indent=1))
        (folder / "state.tmp").replace(folder / "state.json")  # written last: it names a complete checkpoint

    def resume(self) -> bool:
        """Pick up the last checkpoint of the same configuration; False if there is none."""
        import pandas as pd

        path = self.folder / "checkpoint" / "state.json"
        if not path.exists():
            return False
        saved = json.loads(path.read_text())
        if (saved["config"], saved.get("feature_code")) != (self.config.digest(), self.feature_code):
            log.warning("The checkpoint in %s is of another configuration or feature code: starting over", path.parent)
            return False
        self.day = datetime.fromisoformat(saved["day"])
        for name, data in saved["policies"].items():
            state = PolicyState(**data)
            state.versions = [Version(**v) for v in data["versions"]]
            state.events = [Event(**e) for e in data["events"]]
            self.state[name] = state
            frame = pd.read_parquet(path.parent / f"{name}.parquet")
            self.predictions[name] = [frame[frame["sched_dep_at"] < self.day]]
        log.info("Resuming the replay at %s", self.day.date())
        return True

    # --- What came of it -------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Weekly quality per policy, the table's figures for the year and each half, the events, the
        regret of promotions and the missed improvements of rejections."""
        import pandas as pd

        weeks = self.config.weeks()
        policies: dict[str, object] = {}
        result: dict[str, object] = {
            "config": self.config.to_dict(),
            "weeks": [w.start.date().isoformat() for w in weeks],
            "halves": {
                half: [w.start.date().isoformat() for w in weeks if self.config.half(w.start) == half]
                for half in HALVES
            },
            "policies": policies,
            "shared_seconds": dict(self.shared_seconds),
        }
        for policy in POLICIES:
            state = self.state[policy]
            scored = pd.concat(self.predictions[policy], ignore_index=True)
            weekly = []
            for week in weeks:
                rows = scored[(scored["sched_dep_at"] >= week.start) & (scored["sched_dep_at"] < week.end)]
                metrics = binary_metrics(rows[model.LABEL].to_numpy(), rows[PREDICTION].to_numpy(), 0.5)
                weekly.append(
                    {
                        "week": week.start.date().isoformat(),
                        "half": self.config.half(week.start),
                        "roc_auc": metrics["roc_auc"],
                        "log_loss": metrics["log_loss"],
                        "rows": len(rows),
                        "champions": sorted({int(v) for v in rows["version"]}),
                    }
                )
            regret = self.regret(policy)
            missed = self.missed(policy)
            figures = {"year": self._figures(state, weekly, regret, missed, None)}
            for half in HALVES:
                figures[half] = self._figures(state, weekly, regret, missed, half)
            policies[policy] = {
                "weekly": weekly,
                **figures,
                "regret": regret,
                "missed": missed,
                "seconds": dict(state.seconds),
                "events": [asdict(e) for e in state.events],
            }
        return result

    def _figures(
        self, state: PolicyState, weekly: list[dict], regret: list[dict], missed: list[dict], half: str | None
    ) -> dict[str, object]:
        """The table's figures over the year (`half` None) or one half."""

        def inside(at: str) -> bool:
            return half is None or self.config.half(datetime.fromisoformat(at)) == half

        weeks = [w for w in weekly if half is None or w["half"] == half]
        events = [e for e in state.events if inside(e.at)]
        kinds = [e.kind for e in events]
        promotions = [e for e in events if e.kind == "promote" and e.replaced is not None]
        escalations: dict[str, int] = {}
        for event in events:
            if event.kind == "escalate":
                kind = event.detail.split(":", 1)[0]
                escalations[kind] = escalations.get(kind, 0) + 1
        auc = [w["roc_auc"] for w in weeks]
        loss = [w["log_loss"] for w in weeks]
        judged = [r for r in regret if inside(r["at"])]
        return {
            "weeks": len(weeks),
            "mean_roc_auc": sum(auc) / len(auc) if auc else float("nan"),
            "worst_week_roc_auc": min(auc) if auc else float("nan"),
            "mean_log_loss": sum(loss) / len(loss) if loss else float("nan"),
            "worst_week_log_loss": max(loss) if loss else float("nan"),
            "retrains": sum(1 for v in state.versions[1:] if inside(v.trained_at)),
            "promotions": len(promotions),
            "rejections": kinds.count("reject"),
            "drift_retrain_requests": kinds.count("retrain"),
            "escalations": escalations,
            "regret": {"judged": len(judged), "worse": sum(1 for r in judged if r["worse"])},
            "missed": sum(1 for m in missed if inside(m["at"]) and m["missed"]),
        }

    def _week_after(self, policy: str, at: str, new: int, old: int) -> tuple[float, float] | None:
        """The ROC AUC of versions `new` and `old` of `policy` on the week after `at`; None when the
        replay ends before that week does or the week has one class only."""
        start = datetime.fromisoformat(at)
        if start + timedelta(days=7) > self.config.end:
            return None
        rows = self.rows(Interval(start, start + timedelta(days=7)))
        if rows[model.LABEL].nunique() < 2:
            return None
        y = rows[model.LABEL].to_numpy()
        new_auc, old_auc = (binary_metrics(y, self.predict(policy, v, rows), 0.5)["roc_auc"] for v in (new, old))
        return new_auc, old_auc

    def regret(self, policy: str) -> list[dict[str, object]]:
        """Every promotion judged on the week after it: was the new champion worse than the model it replaced?"""
        found = []
        for event in self.state[policy].events:
            if event.kind != "promote" or event.version is None or event.replaced is None:
                continue
            auc = self._week_after(policy, event.at, event.version, event.replaced)
            if auc is None:
                continue
            new, old = auc
            found.append(
                {
                    "at": event.at,
                    "version": event.version,
                    "replaced": event.replaced,
                    "roc_auc": [new, old],
                    "worse": new < old,
                }
            )
        return found

    def missed(self, policy: str) -> list[dict[str, object]]:
        """Every rejection judged on the week after it: was the candidate better than the champion it
        would have replaced by at least `missed_margin`?"""
        found = []
        if policy not in GATED:
            return found
        champion = 1
        for event in self.state[policy].events:
            if event.kind == "promote":
                champion = event.version or champion
                continue
            if event.kind != "reject" or event.version is None:
                continue
            auc = self._week_after(policy, event.at, event.version, champion)
            if auc is None:
                continue
            new, old = auc
            found.append(
                {
                    "at": event.at,
                    "version": event.version,
                    "champion": champion,
                    "roc_auc": [new, old],
                    "missed": new - old >= self.config.missed_margin,
                }
            )
        return found


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)
