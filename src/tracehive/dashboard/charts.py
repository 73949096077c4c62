"""Line charts as plain SVG geometry, drawn by a template: no chart library, no script."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tracehive.dashboard.render import duration, literal, usd
from tracehive.store.base import Row

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 22
MAX_SERIES = 6  # one colour class each in the stylesheet


@dataclass
class Line:
    label: str
    colour: int
    segments: list[list[tuple[float, float]]]  # (x, y) runs, split where data is missing
    dashed: bool = False
    suffix: str = ""  # ours, after the label (which may be a user's value): "p50", "p95"


@dataclass
class Chart:
    title: str
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not self.lines


def group_label(point: Row) -> str:
    if point.get("other"):
        return "(other)"
    if point.get("missing"):
        return "(missing)"
    value = point.get("value")
    return value if isinstance(value, str) else literal(value)


def _buckets(points: list[Row], width_s: int) -> list[datetime]:
    times = sorted({p["time"] for p in points})
    if not times:
        return []
    first, last = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (times[0], times[-1]))
    count = int((last - first).total_seconds() // width_s) + 1
    return [first + timedelta(seconds=width_s * i) for i in range(count)]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _x(i: int, n: int) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (i / (n - 1) if n > 1 else 0.5)


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top if top else 1)


def _segments(values: list[float | None], top: float) -> list[list[tuple[float, float]]]:
    """Runs of points with data; a run of one point is drawn as a dot."""
    segments: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
        else:
            segments[-1].append((round(_x(i, len(values)), 1), round(_y(value, top), 1)))
    return [s for s in segments if s]


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value))  # fractions too: costs are often below a cent
    for factor in (1, 2, 2.5, 5, 10):
        if step * factor >= value:
            return step * factor
    return value


def _x_ticks(buckets: list[datetime], width_s: int) -> list[tuple[float, str]]:
    fmt = "%H:%M" if width_s < 3600 else ("%m-%d %H:%M" if width_s < 86400 else "%Y-%m-%d")
    n = len(buckets)
    picks = sorted({0, n // 2, n - 1}) if n else []
    return [(_x(i, n), buckets[i].strftime(fmt)) for i in picks]


def time_charts(series: Row, *, split: bool) -> list[Chart]:
    """From a ``/timeseries`` answer: sessions over time, p50 (solid) / p95 (dashed) duration, and
    the cost of the model calls when some had one."""
    points: list[Row] = series["points"]
    width_s = series["bucket_seconds"]
    buckets = _buckets(points, width_s)
    by_group: dict[str, dict[str, Row]] = {}
    for point in points:
        label = group_label(point) if split else "sessions"
        by_group.setdefault(label, {})[point["time"]] = point
    keys = [_iso(b) for b in buckets]
    counts_chart, duration_chart = Chart("Sessions over time"), Chart("Duration p50 / p95 over time")
    cost_chart = Chart("Cost of model calls over time (USD)")
    count_top = _nice_top(max((p["sessions"] for p in points), default=0))
    ms_top = _nice_top(max((p["p95_ms"] or 0 for p in points), default=0))
    costs = [p.get("cost") for p in points if p.get("cost") is not None]
    cost_top = _nice_top(max(costs, default=0))
    for colour, (label, found) in enumerate(list(by_group.items())[:MAX_SERIES]):
        counts = [found[k]["sessions"] if k in found else 0 for k in keys]
        counts_chart.lines.append(Line(label, colour, _segments(counts, count_top)))
        for name, dashed in (("p50_ms", False), ("p95_ms", True)):
            values = [found[k][name] if k in found else None for k in keys]
            line_colour = colour if split else int(dashed)
            line = Line(label, line_colour, _segments(values, ms_top), dashed, suffix=name[:3])
            duration_chart.lines.append(line if split else Line(name[:3], line_colour, line.segments, dashed))
        values = [found[k].get("cost") if k in found else None for k in keys]
        if any(v is not None for v in values):  # a group whose costs are all unknown gets no line
            cost_chart.lines.append(Line(label if split else "cost", colour, _segments(values, cost_top)))
    charts = [(counts_chart, count_top, _count), (duration_chart, ms_top, duration)]
    for chart, top, fmt in charts + ([(cost_chart, cost_top, usd)] if costs else []):
        chart.y_ticks = [(_y(top * f, top), fmt(top * f)) for f in (0, 0.5, 1)]
        chart.x_ticks = _x_ticks(buckets, width_s)
    return [counts_chart, duration_chart, *([cost_chart] if costs else [])]


def _count(value: Any) -> str:
    return f"{value:g}"
