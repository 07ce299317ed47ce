"""The drift timeline as an SVG chart: per day, the drift share (of the model's importance) and the
realised ROC AUC of the champion (beside its ROC AUC on its first production week), with retrain
triggers, promotions, rollbacks, the gate's rejections and escalations marked above the plot.
Drawn on the server, so the view needs no script; every point and marker has a tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.mlops.records import AuditEntry, DriftCheck, GateJudgement

WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 52, 56
SERIES = {  # name: (label, colour, dashed)
    "drift_share": ("drift share", "#d97706", False),
    "realised": ("realised ROC AUC", "#2563eb", False),
    "baseline": ("champion's first production week", "#2563eb", True),
}
MARKERS = {  # kind: (label, colour, glyph)
    "retrain": ("retrain triggered", "#d97706", "triangle"),
    "promotion": ("promotion", "#16a34a", "circle"),
    "rollback": ("rollback", "#7c3aed", "circle"),
    "rejection": ("rejected by the gate", "#6b7280", "square"),
    "escalation": ("escalation", "#dc2626", "cross"),
}


@dataclass(frozen=True)
class Day:
    day: date
    drift_share: float | None
    realised: float | None
    baseline: float | None
    summary: str  # the day's last check, for the tooltip


@dataclass(frozen=True)
class Marker:
    day: date
    kind: str
    text: str


def timeline(
    checks: list[DriftCheck], moves: list[AuditEntry], gate: list[GateJudgement]
) -> tuple[list[Day], list[Marker]]:
    """The chart's data: one point per day (its last check) and the events of each day."""
    days: dict[date, Day] = {}
    markers: list[Marker] = []
    for check in checks:  # oldest first, so a day's last check wins
        day = check.at.date()
        summary = f"{day}: {check.action} (champion v{check.champion_version}) {'; '.join(check.reasons)}"
        days[day] = Day(day, check.drift_share, check.realised_roc_auc, check.baseline_roc_auc, summary)
        if check.retrain_run_id:
            why = ", ".join(check.drifted) or "; ".join(check.reasons)
            markers.append(Marker(day, "retrain", f"{day}: retrain triggered: {why}"))
        if check.escalation:
            kind = check.escalation_kind.replace("_", " ")
            markers.append(Marker(day, "escalation", f"{day}: escalated ({kind}): {check.escalation}"))
    for move in moves:
        if move.status == "FINISHED":
            kind = "promotion" if move.action == "promote" else "rollback"
            text = f"{move.at[:10]}: {move.action} to v{move.to_version}: {move.reason}"
            markers.append(Marker(date.fromisoformat(move.at[:10]), kind, text))
    for decision in gate:
        if decision.outcome == "reject":
            day = decision.decided_at.date()
            why = "; ".join(decision.reasons)
            markers.append(Marker(day, "rejection", f"{day}: v{decision.candidate_version} rejected: {why}"))
    return sorted(days.values(), key=lambda d: d.day), markers


def svg(days: list[Day], markers: list[Marker]) -> str:
    """The chart; empty when there is nothing to draw."""
    every = [d.day for d in days] + [m.day for m in markers]
    if not every:
        return ""
    first, last = min(every), max(every)
    span = max((last - first).days, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return LEFT + plot_w * (day - first).days / span if first != last else LEFT + plot_w / 2

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="drift timeline" class="timeline">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    step = max(1, round(span / 8))
    tick_day = first
    while tick_day <= last:
        parts.append(
            f'<text x="{x(tick_day):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick_day:%d %b}</text>'
        )
        tick_day += timedelta(days=step)
    for name, (label, colour, dashed) in SERIES.items():
        points = [(d, getattr(d, name)) for d in days if getattr(d, name) is not None]
        if len(points) > 1:
            path = " ".join(f"{x(d.day):.1f},{y(v):.1f}" for d, v in points)
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        if not dashed:
            for d, v in points:
                title = escape(f"{label} {v:.3f} — {d.summary}")
                parts.append(
                    f'<circle cx="{x(d.day):.1f}" cy="{y(v):.1f}" r="4" fill="{colour}" class="point {name}">'
                    f"<title>{title}</title></circle>"
                )
    rows: dict[date, int] = {}
    for marker in markers:
        row = rows.get(marker.day, 0)
        rows[marker.day] = row + 1
        cx, cy = x(marker.day), TOP - 12 - 14 * row
        label, colour, glyph = MARKERS[marker.kind]
        parts.append(
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{colour}" class="event"/>'
        )
        parts.append(
            f'<g class="marker {marker.kind}">{_glyph(glyph, cx, cy, colour)}<title>{escape(marker.text)}</title></g>'
        )
    legend_x, legend_y = LEFT, HEIGHT - 24  # the series on one row, the markers below
    for label, colour, dashed in SERIES.values():
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/><text x="{legend_x + 22}" y="{legend_y}">{label}</text>'
        )
        legend_x += 40 + 7 * len(label)
    legend_x, legend_y = LEFT, HEIGHT - 6
    for kind in dict.fromkeys(m.kind for m in markers):
        label, colour, glyph = MARKERS[kind]
        parts.append(_glyph(glyph, legend_x + 6, legend_y - 4, colour))
        parts.append(f'<text x="{legend_x + 16}" y="{legend_y}">{label}</text>')
        legend_x += 36 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def _glyph(glyph: str, cx: float, cy: float, colour: str) -> str:
    if glyph == "triangle":
        corners = f"{cx:.1f},{cy - 6:.1f} {cx - 6:.1f},{cy + 5:.1f} {cx + 6:.1f},{cy + 5:.1f}"
        return f'<polygon points="{corners}" fill="{colour}"/>'
    if glyph == "square":
        return f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{colour}"/>'
    if glyph == "cross":
        return (
            f'<path d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} M{cx + 5:.1f},{cy - 5:.1f} '
            f'L{cx - 5:.1f},{cy + 5:.1f}" stroke="{colour}" stroke-width="3"/>'
        )
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}"/>'
