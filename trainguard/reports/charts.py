"""Line charts as inline SVG: no JavaScript, no network, readable when printed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str


@dataclass
class Marker:
    """A vertical line at x (e.g. the step of a finding), with a short label."""

    x: float
    label: str
    color: str = "#c0392b"


@dataclass
class Chart:
    title: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    log_y: bool = False
    x_label: str = "optimizer step"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}"


def render(chart: Chart) -> str:
    """The chart as an <svg> element (a message instead of axes when there is nothing to plot)."""
    transform = (lambda y: math.log10(y)) if chart.log_y else (lambda y: y)
    points = [
        (x, transform(y))
        for series in chart.series
        for x, y in series.points
        if math.isfinite(y) and (y > 0 or not chart.log_y)
    ]
    title = f'<text x="{LEFT}" y="18" class="title">{escape(chart.title)}</text>'
    if not points:
        return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">{title}'
                f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no data</text></svg>')
    xs = [x for x, _ in points] + [m.x for m in chart.markers]
    ys = [y for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT)

    def py(y: float) -> float:
        return HEIGHT - BOTTOM - (y - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">', title]
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" class="frame"/>')
    for tick in _ticks(y0, y1):
        text = _label(10 ** tick) if chart.log_y else _label(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" class="tick">{text}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{px(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">{_label(tick)}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 4}" text-anchor="middle" class="axis">{escape(chart.x_label)}</text>')
    for marker in chart.markers:
        x = px(marker.x)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="{marker.color}" class="marker"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{TOP + 12}" fill="{marker.color}" class="marker-label">{escape(marker.label)}</text>')
    for series in chart.series:
        coords = [(px(x), py(transform(y))) for x, y in series.points if math.isfinite(y) and (y > 0 or not chart.log_y)]
        if len(coords) == 1:
            parts.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" fill="{series.color}"/>')
        elif coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{series.color}" stroke-width="1.6"/>')
    legend_x = WIDTH - RIGHT
    for series in reversed(chart.series):  # legend on the title line, right-aligned, outside the plot
        parts.append(f'<text x="{legend_x}" y="18" text-anchor="end" fill="{series.color}" class="legend">{escape(series.name)}</text>')
        legend_x -= 8 + 7 * len(series.name)
    parts.append("</svg>")
    return "".join(parts)
