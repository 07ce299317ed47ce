"""The replay's report: a chart of weekly quality per policy, the tables of the calibration and
held-out halves, the verdict, and the log beside it.

`write` turns `Replay.summary()` into `report.md`, `quality.png`, `summary.json` and the log in
the replay folder: `events.csv` (every decision of the loop, day by day) and `weeks.csv` (each
week's ROC AUC per policy and the loop's champions), which the report links rather than lists.
`log_to_mlflow` records the summary as one run of the MLflow experiment `replay`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict, cast

from include.mlops import records, tracking
from include.mlops.settings import Settings

LABELS = {
    "loop": "loop (drift-triggered retraining, gated)",
    "gated": "gated weekly (weekly retraining, gated)",
    "static": "static (first model, never replaced)",
    "blind": "blind (weekly retraining, no gate)",
}
COLORS = {"loop": "#1f77b4", "gated": "#2ca02c", "static": "#7f7f7f", "blind": "#ff7f0e"}
HALF_TITLES = {
    "held_out": "July to December (held out: the rules were frozen before it)",
    "calibration": "February to June (calibration: the rules were chosen on it)",
    "year": "The whole year",
}
Half = Literal["year", "calibration", "held_out"]
TableKey = Literal[
    "mean_roc_auc", "worst_week_roc_auc", "mean_log_loss", "worst_week_log_loss", "retrains", "promotions", "rejections"
]
HALVES: tuple[Half, ...] = ("year", "calibration", "held_out")
REPORTED: tuple[Half, ...] = ("held_out", "calibration", "year")  # the report's order: held-out half first
JUDGED: tuple[Half, ...] = ("held_out", "calibration")  # the halves the verdict judges
TABLE: list[tuple[str, TableKey, str]] = [
    ("mean weekly ROC AUC", "mean_roc_auc", "{:.4f}"),
    ("worst week ROC AUC", "worst_week_roc_auc", "{:.4f}"),
    ("mean weekly log loss", "mean_log_loss", "{:.4f}"),
    ("worst week log loss", "worst_week_log_loss", "{:.4f}"),
    ("retrains", "retrains", "{}"),
    ("promotions", "promotions", "{}"),
    ("rejections", "rejections", "{}"),
]
MARKERS = {  # loop event kind: marker, label, row below the curves (a share of the axis' height)
    "retrain": ("|", "retrain asked", 0.04),
    "promote": ("^", "promoted", 0.11),
    "reject": ("x", "rejected by the gate", 0.18),
    "escalate": ("*", "escalated", 0.25),
}
REPORT = "report.md"
PLOT = "quality.png"  # each week's ROC AUC by policy
SUMMARY = "summary.json"  # `Replay.summary()`, whole
EVENTS = "events.csv"  # the loop's decisions: day, kind, version, replaces, gate, detail
WEEKS = "weeks.csv"  # a week's ROC AUC per policy (roc_auc_<policy>) and the loop's champions
EVENT_COLUMNS = ("day", "kind", "version", "replaces", "gate", "detail")


class Config(TypedDict):
    """The part of `ReplayConfig.to_dict()` the report reads (MLflow gets every key)."""

    start: str
    end: str
    held_out_from: str
    training_days: int


class Week(TypedDict):
    week: str
    half: str
    roc_auc: float
    log_loss: float
    rows: int
    champions: list[int]


class Regret(TypedDict):
    judged: int
    worse: int


class Figures(TypedDict):
    """A policy's figures over the year or one half."""

    weeks: int
    mean_roc_auc: float
    worst_week_roc_auc: float
    mean_log_loss: float
    worst_week_log_loss: float
    retrains: int
    promotions: int
    rejections: int
    drift_retrain_requests: int
    escalations: dict[str, int]
    regret: Regret
    missed: int


class Event(TypedDict):
    at: str
    kind: str
    version: int | None
    detail: str
    replaced: int | None
    gate: str | None


class Policy(TypedDict):
    weekly: list[Week]
    year: Figures
    calibration: Figures
    held_out: Figures
    seconds: dict[str, float]
    events: list[Event]


class Halves(TypedDict):
    calibration: list[str]
    held_out: list[str]


class Summary(TypedDict):
    """What `Replay.summary()` returns, as the report reads it."""

    config: Config
    weeks: list[str]
    halves: Halves
    policies: dict[str, Policy]
    shared_seconds: dict[str, float]


def write(summary: Mapping[str, object], folder: Path) -> Path:
    """Write `report.md`, `quality.png`, `summary.json`, `events.csv` and `weeks.csv` into `folder`;
    return the report's path."""
    replay = _typed(summary)
    folder.mkdir(parents=True, exist_ok=True)
    chart(replay, folder / PLOT)
    (folder / SUMMARY).write_text(json.dumps(summary, indent=1, default=str))
    write_events(replay, folder / EVENTS)
    write_weeks(replay, folder / WEEKS)
    path = folder / REPORT
    path.write_text(markdown(replay))
    return path


def chart(summary: Summary, path: Path) -> None:
    """Weekly ROC AUC and log loss per policy, the held-out half shaded, the loop's retrains,
    promotions, rejections and escalations marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    weeks = [datetime.fromisoformat(w) for w in summary["weeks"]]
    policies = summary["policies"]
    figure, (auc_axis, loss_axis) = plt.subplots(2, 1, figsize=(12, 8), sharex=True, constrained_layout=True)
    for name, result in policies.items():
        auc, loss = [w["roc_auc"] for w in result["weekly"]], [w["log_loss"] for w in result["weekly"]]
        for axis, values in ((auc_axis, auc), (loss_axis, loss)):
            axis.plot(weeks, values, label=LABELS[name], color=COLORS[name], marker=".", linewidth=1.3)
    held_out = summary["halves"]["held_out"]
    if held_out:
        for axis in (auc_axis, loss_axis):
            axis.axvspan(datetime.fromisoformat(held_out[0]), weeks[-1], color="#eeeeee", zorder=0)
        auc_axis.text(datetime.fromisoformat(held_out[0]), auc_axis.get_ylim()[1], " held out", va="top", fontsize=9)
    low, high = auc_axis.get_ylim()
    for kind, (marker, label, row) in MARKERS.items():
        times = [
            datetime.fromisoformat(e["at"])
            for e in policies["loop"]["events"]
            if e["kind"] == kind and not (kind == "promote" and e["replaced"] is None)
        ]
        if times:
            y = low - (high - low) * row
            auc_axis.scatter(times, [y] * len(times), marker=marker, color=COLORS["loop"], label=f"loop: {label}")
    auc_axis.set_ylabel("ROC AUC (weekly, higher is better)")
    loss_axis.set_ylabel("log loss (weekly, lower is better)")
    auc_axis.set_title("Replay of 2013: realised quality per week of each policy's champion")
    auc_axis.legend(loc="upper left", fontsize=8, ncol=2)
    loss_axis.legend(loc="upper left", fontsize=8)
    loss_axis.xaxis.set_major_formatter(mdates.DateFormatter("%b"))
    for axis in (auc_axis, loss_axis):
        axis.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(summary: Summary) -> str:
    """The short report: the setting, the chart, the three tables, the verdict and where the log is."""
    config, policies = summary["config"], summary["policies"]
    names = list(policies)
    lines = [
        "# Replay of 2013: does drift-triggered retraining pay off?",
        "",
        f"From {config['start'][:10]} to {config['end'][:10]} (end excluded) on the replay clock; every policy "
        f"starts from the same model, trained on the first {config['training_days']} days, and is scored on "
        f"the {len(summary['weeks'])} weeks after (quality measured on every flight once its label landed). "
        f"The drift monitor's thresholds and limits and the rules' numbers were chosen on the weeks before "
        f"{config['held_out_from'][:10]} and frozen; the weeks from then on are held out.",
        "",
        f"![weekly quality per policy]({PLOT})",
        "",
    ]
    for half in REPORTED:
        lines += [f"## {HALF_TITLES[half]}", "", *table(policies, names, half), ""]
    shared = summary["shared_seconds"]
    lines += [
        "Compute (s) over the year: scoring, drift, training, gate: "
        + "; ".join(f"{n} {_seconds(policies[n]['seconds'])}" for n in names)
        + f". Shared by all: features {shared['features']:.0f} s, labelled feature frames {shared['frames']:.0f} s.",
        "",
        "## What it shows",
        "",
        *verdict(policies),
        "",
        "## The log",
        "",
        f"- [{EVENTS}]({EVENTS}): every decision of the loop, day by day (columns {_columns(EVENT_COLUMNS)}).",
        f"- [{WEEKS}]({WEEKS}): each week's ROC AUC per policy and the loop's champions "
        f"(columns {_columns(week_columns(names))}).",
    ]
    return "\n".join(lines) + "\n"


def write_events(summary: Summary, path: Path) -> None:
    """The loop's decisions, one row each, with their whole detail."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        for event in summary["policies"]["loop"]["events"]:
            cells = [event["at"][:10], event["kind"], event["version"], event["replaced"], event["gate"]]
            writer.writerow(["" if cell is None else str(cell) for cell in cells] + [event["detail"]])


def week_columns(names: list[str]) -> list[str]:
    return ["week", "half", *(f"roc_auc_{n}" for n in names), "loop_champions"]


def write_weeks(summary: Summary, path: Path) -> None:
    """Each week's ROC AUC per policy, and the versions the loop had in production that week."""
    policies = summary["policies"]
    names = list(policies)
    with path.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(week_columns(names))
        for i, week in enumerate(summary["weeks"]):
            loop_week = policies["loop"]["weekly"][i]
            cells = [f"{policies[n]['weekly'][i]['roc_auc']:.4f}" for n in names]
            champions = " ".join(str(v) for v in loop_week["champions"])
            writer.writerow([week, loop_week["half"], *cells, champions])


def table(policies: Mapping[str, Policy], names: list[str], half: Half) -> list[str]:
    """One half's figures, a column per policy."""
    lines = ["| | " + " | ".join(LABELS[n] for n in names) + " |", "|---|" + "---|" * len(names)]
    figures = {n: policies[n][half] for n in names}
    weeks = next(iter(figures.values()))["weeks"]
    lines.append(f"| weeks | {' | '.join(str(weeks) for _ in names)} |")
    for title, key, form in TABLE:
        lines.append(f"| {title} | " + " | ".join(_number(form, figures[n][key]) for n in names) + " |")
    rows: dict[str, Callable[[Figures], str]] = {
        "promotions worse than the model they replaced, the week after (regret)": _regret,
        "rejected candidates better by 0.01 ROC AUC the week after (missed)": lambda f: str(f["missed"]),
        "escalations by kind": lambda f: _kinds(f["escalations"]),
    }
    for title, cell in rows.items():
        lines.append(f"| {title} | " + " | ".join(cell(figures[n]) for n in names) + " |")
    return lines


def verdict(policies: Mapping[str, Policy]) -> list[str]:
    """What the numbers say against the bar, whichever way they fall, held-out half first."""
    lines = []
    for half in JUDGED:
        loop, blind, gated = (policies[n][half] for n in ("loop", "blind", "gated"))
        auc = loop["mean_roc_auc"] - blind["mean_roc_auc"]
        retrains = f"{loop['retrains']} retrains against blind's {blind['retrains']}"
        meets = auc >= 0 and loop["retrains"] <= blind["retrains"] / 2
        lines.append(
            f"- {HALF_TITLES[half].split(' (')[0]} ({half.replace('_', '-')}): the loop's mean weekly ROC AUC is "
            f"{auc:+.4f} against blind weekly retraining's with {retrains}: the bar (at least blind's, with at most "
            f"half its retrains) is {'met' if meets else 'NOT met'}. Gated weekly: "
            f"{gated['mean_roc_auc'] - blind['mean_roc_auc']:+.4f} against blind."
        )
        regret = loop["regret"]
        share = regret["worse"] / regret["judged"] if regret["judged"] else 0.0
        lines.append(
            f"  Regret: {regret['worse']} of the loop's {regret['judged']} promotions judged ({share:.0%}; the bar is "
            f"at most 15%); missed improvements: {loop['missed']}; escalations: {_kinds(loop['escalations'])}."
        )
    year = policies["loop"]["year"]
    escalations = sum(year["escalations"].values())
    lines.append(f"- Escalations in the year: {escalations} (the bar is at most 4): {_kinds(year['escalations'])}.")
    return lines


def log_to_mlflow(settings: Settings, summary: Mapping[str, object], folder: Path) -> str:
    """One run of the experiment `replay`: the configuration, each policy's figures, the report and its log."""
    from mlflow import MlflowClient

    replay = _typed(summary)
    config = replay["config"]
    metric = records.ReplayRun.metric
    metrics: dict[str, float] = {}
    for name, result in replay["policies"].items():
        for half in HALVES:
            figures = result[half]
            for _, key, _ in TABLE:
                if not math.isnan(value := float(figures[key])):
                    metrics[metric(name, half, key)] = value
            metrics[metric(name, half, "regret_worse")] = figures["regret"]["worse"]
            metrics[metric(name, half, "missed")] = figures["missed"]
            metrics[metric(name, half, "escalations")] = sum(figures["escalations"].values())
        metrics[metric(name, "", "compute_seconds")] = sum(result["seconds"].values())
    run = records.ReplayRun(
        start=config["start"],
        end=config["end"],
        config=config,
        metrics=metrics,
        files=tuple(folder / name for name in (REPORT, PLOT, SUMMARY, EVENTS, WEEKS)),
        code_version=tracking.code_version(),
    )
    experiment_id = tracking.connect(settings, records.REPLAY_EXPERIMENT)  # before the client: it sets the URI
    return run.write(MlflowClient(), experiment_id)


def _typed(summary: Mapping[str, object]) -> Summary:
    """`Replay.summary()` as the report reads it (a plain dict; its shape is the TypedDicts above)."""
    return cast("Summary", summary)


def _number(form: str, value: object) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else form.format(value)


def _regret(figures: Figures) -> str:
    regret = figures["regret"]
    return f"{regret['worse']} of {regret['judged']}"


def _kinds(escalations: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(escalations.items())) or "none"


def _seconds(seconds: Mapping[str, float]) -> str:
    parts = ", ".join(f"{seconds[k]:.0f}" for k in ("scoring", "drift", "training", "gate"))
    return f"{sum(seconds.values()):.0f} ({parts})"


def _columns(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
