"""The replay's report: a chart of weekly quality per policy, the tables of the calibration and
held-out halves, the verdict, the events.

`write` turns `Replay.summary()` into `report.md` and `quality.png` in the replay folder, and
`log_to_mlflow` records the summary as one run of the MLflow experiment `replay`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

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
TABLE = [
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


def write(summary: Mapping[str, object], folder: Path) -> Path:
    """Write `report.md`, `quality.png` and `summary.json` into `folder`; return the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    chart(summary, folder / "quality.png")
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    path = folder / "report.md"
    path.write_text(markdown(summary))
    return path


def chart(summary: Mapping[str, object], path: Path) -> None:
    """Weekly ROC AUC and log loss per policy, the held-out half shaded, the loop's retrains,
    promotions, rejections and escalations marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    weeks = [datetime.fromisoformat(w) for w in summary["weeks"]]  # type: ignore[union-attr]
    policies = summary["policies"]  # type: ignore[index]
    figure, (auc_axis, loss_axis) = plt.subplots(2, 1, figsize=(12, 8), sharex=True, constrained_layout=True)
    for name, result in policies.items():  # type: ignore[union-attr]
        for axis, metric in ((auc_axis, "roc_auc"), (loss_axis, "log_loss")):
            values = [w[metric] for w in result["weekly"]]
            axis.plot(weeks, values, label=LABELS[name], color=COLORS[name], marker=".", linewidth=1.3)
    held_out = summary["halves"]["held_out"]  # type: ignore[index]
    if held_out:
        for axis in (auc_axis, loss_axis):
            axis.axvspan(datetime.fromisoformat(held_out[0]), weeks[-1], color="#eeeeee", zorder=0)
        auc_axis.text(datetime.fromisoformat(held_out[0]), auc_axis.get_ylim()[1], " held out", va="top", fontsize=9)
    low, high = auc_axis.get_ylim()
    for kind, (marker, label, row) in MARKERS.items():
        times = [
            datetime.fromisoformat(e["at"])
            for e in policies["loop"]["events"]  # type: ignore[index]
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


def markdown(summary: Mapping[str, object]) -> str:
    config, policies = summary["config"], summary["policies"]  # type: ignore[index]
    names = list(policies)  # type: ignore[arg-type]
    lines = [
        "# Replay of 2013: does drift-triggered retraining pay off?",
        "",
        f"From {config['start'][:10]} to {config['end'][:10]} (end excluded) on the replay clock; every policy "  # type: ignore[index]
        f"starts from the same model, trained on the first {config['training_days']} days, and is scored on "  # type: ignore[index]
        f"the {len(summary['weeks'])} weeks after (quality measured on every flight once its label landed). "  # type: ignore[arg-type]
        f"The drift monitor's thresholds and limits and the rules' numbers were chosen on the weeks before "
        f"{config['held_out_from'][:10]} and frozen; the weeks from then on are held out.",  # type: ignore[index]
        "",
        "![weekly quality per policy](quality.png)",
        "",
    ]
    for half in ("held_out", "calibration", "year"):
        lines += [f"## {HALF_TITLES[half]}", "", *table(policies, names, half), ""]  # type: ignore[arg-type]
    shared = summary["shared_seconds"]  # type: ignore[index]
    lines += [
        "Compute (s) over the year: scoring, drift, training, gate: "
        + "; ".join(f"{n} {_seconds(policies[n]['seconds'])}" for n in names)  # type: ignore[index]
        + f". Shared by all: features {shared['features']:.0f} s, labelled feature frames {shared['frames']:.0f} s.",  # type: ignore[index]
        "",
        "## What it shows",
        "",
        *verdict(policies),  # type: ignore[arg-type]
        "",
        "## The loop's decisions",
        "",
        "| when | what | version | replaces | gate | detail |",
        "|---|---|---|---|---|---|",
    ]
    for event in policies["loop"]["events"]:  # type: ignore[index]
        detail = _short(str(event["detail"])).replace("|", "/")
        cells = [event["at"][:10], event["kind"], event["version"], event["replaced"], event["gate"], detail]
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |")
    lines += ["", "## Weekly ROC AUC", "", "| week | half | " + " | ".join(names) + " | loop's champion |"]
    lines.append("|---|---|" + "---|" * (len(names) + 1))
    for i, week in enumerate(summary["weeks"]):  # type: ignore[arg-type]
        loop_week = policies["loop"]["weekly"][i]  # type: ignore[index]
        cells = [f"{policies[n]['weekly'][i]['roc_auc']:.4f}" for n in names]  # type: ignore[index]
        champions = ", ".join(f"v{v}" for v in loop_week["champions"])
        lines.append(f"| {week} | {loop_week['half'].replace('_', ' ')} | " + " | ".join(cells) + f" | {champions} |")
    return "\n".join(lines) + "\n"


def table(policies: Mapping[str, Mapping[str, object]], names: list[str], half: str) -> list[str]:
    """One half's figures, a column per policy."""
    lines = ["| | " + " | ".join(LABELS[n] for n in names) + " |", "|---|" + "---|" * len(names)]
    figures = {n: policies[n][half] for n in names}
    weeks = next(iter(figures.values()))["weeks"]  # type: ignore[index]
    lines.append(f"| weeks | {' | '.join(str(weeks) for _ in names)} |")
    for title, key, form in TABLE:
        lines.append(f"| {title} | " + " | ".join(_number(form, figures[n][key]) for n in names) + " |")  # type: ignore[index]
    rows = {
        "promotions worse than the model they replaced, the week after (regret)": lambda f: _regret(f),
        "rejected candidates better by 0.01 ROC AUC the week after (missed)": lambda f: str(f["missed"]),
        "escalations by kind": lambda f: _kinds(f["escalations"]),
    }
    for title, cell in rows.items():
        lines.append(f"| {title} | " + " | ".join(cell(figures[n]) for n in names) + " |")
    return lines


def verdict(policies: Mapping[str, Mapping[str, object]]) -> list[str]:
    """What the numbers say against the bar, whichever way they fall, held-out half first."""
    lines = []
    for half in ("held_out", "calibration"):
        loop, blind, gated = (policies[n][half] for n in ("loop", "blind", "gated"))
        auc = loop["mean_roc_auc"] - blind["mean_roc_auc"]  # type: ignore[operator]
        retrains = f"{loop['retrains']} retrains against blind's {blind['retrains']}"
        meets = auc >= 0 and loop["retrains"] <= blind["retrains"] / 2  # type: ignore[operator]
        lines.append(
            f"- {HALF_TITLES[half].split(' (')[0]} ({half.replace('_', '-')}): the loop's mean weekly ROC AUC is "
            f"{auc:+.4f} against blind weekly retraining's with {retrains}: the bar (at least blind's, with at most "
            f"half its retrains) is {'met' if meets else 'NOT met'}. Gated weekly: "
            f"{gated['mean_roc_auc'] - blind['mean_roc_auc']:+.4f} against blind."  # type: ignore[operator]
        )
        regret = loop["regret"]
        share = regret["worse"] / regret["judged"] if regret["judged"] else 0.0  # type: ignore[index]
        lines.append(
            f"  Regret: {regret['worse']} of the loop's {regret['judged']} promotions judged ({share:.0%}; the bar is "  # type: ignore[index]
            f"at most 15%); missed improvements: {loop['missed']}; escalations: {_kinds(loop['escalations'])}."
        )
    year = policies["loop"]["year"]
    escalations = sum(year["escalations"].values())  # type: ignore[union-attr]
    lines.append(f"- Escalations in the year: {escalations} (the bar is at most 4): {_kinds(year['escalations'])}.")
    return lines


def log_to_mlflow(settings: Settings, summary: Mapping[str, object], folder: Path) -> str:
    """One run of the experiment `replay`: the configuration, each policy's figures, the report."""
    from mlflow import MlflowClient

    experiment_id = tracking.connect(settings, records.REPLAY_EXPERIMENT)
    client = MlflowClient()
    config = summary["config"]  # type: ignore[index]
    run = client.create_run(
        experiment_id,
        run_name=f"replay {config['start'][:10]} to {config['end'][:10]}",  # type: ignore[index]
        tags={records.CODE_VERSION: tracking.code_version()},
    )
    run_id = run.info.run_id
    for key, value in config.items():  # type: ignore[union-attr]
        client.log_param(run_id, key, json.dumps(value) if isinstance(value, dict) else value)
    for name, result in summary["policies"].items():  # type: ignore[union-attr]
        for half in ("year", "calibration", "held_out"):
            for _, key, _ in TABLE:
                value = float(result[half][key])
                if not math.isnan(value):
                    client.log_metric(run_id, f"{name}.{half}.{key}", value)
            client.log_metric(run_id, f"{name}.{half}.regret_worse", result[half]["regret"]["worse"])
            client.log_metric(run_id, f"{name}.{half}.missed", result[half]["missed"])
            client.log_metric(run_id, f"{name}.{half}.escalations", sum(result[half]["escalations"].values()))
        client.log_metric(run_id, f"{name}.compute_seconds", sum(result["seconds"].values()))
    for artifact in ("report.md", "quality.png", "summary.json"):
        client.log_artifact(run_id, str(folder / artifact))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _number(form: str, value: object) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else form.format(value)


def _regret(figures: Mapping[str, object]) -> str:
    regret = figures["regret"]
    return f"{regret['worse']} of {regret['judged']}"  # type: ignore[index]


def _kinds(escalations: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(escalations.items())) or "none"


def _seconds(seconds: Mapping[str, float]) -> str:
    parts = ", ".join(f"{seconds[k]:.0f}" for k in ("scoring", "drift", "training", "gate"))
    return f"{sum(seconds.values()):.0f} ({parts})"


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
