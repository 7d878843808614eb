"""Line charts as inline SVG, readable without JavaScript and when printed, made interactive by a
small inline script (`SCRIPT`): hover shows the exact step and values under the pointer, dragging
a box zooms into it, a double click resets. No library and no network: the page stays one file.

Each chart is a <figure class="chart"> holding the drawn <svg> and, in `data-chart`, the numbers
the script needs (the axes' ranges, the series with their non-finite values as strings, the
markers). The curves sit in a nested <svg class="plot"> in plot pixels, which clips them; on a
zoom the script redraws curves, ticks and marker labels from those numbers with the rules used here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
CHAR_WIDTH = 6  # pixels one character of the 10 px labels takes (a generous average, so labels do not touch)
LABEL_ROWS = 3  # marker labels stack in up to this many rows before one is left to the hover tooltip


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


def ticks(low: float, high: float, log: bool = False, count: int = 5) -> tuple[list[float], float | None]:
    """Tick positions on an axis from `low` to `high` (log10 of the values on a log axis), and the
    step between their values (None for decades on a log axis: each tick is its own step)."""
    if log and high - low >= 2.5:  # decades, every n-th one when there are many
        stride = math.ceil((high - low) / count)
        return [float(power) for power in range(math.ceil(low), math.floor(high) + 1) if power % stride == 0], None
    if log and high - low >= 0.5:  # one or two decades: 1, 2, 5 times a power of ten
        powers = range(math.floor(low), math.ceil(high) + 1)
        return [math.log10(m * 10.0 ** power) for power in powers for m in (1, 2, 5) if low <= math.log10(m * 10.0 ** power) <= high], None
    if log:
        values, step = ticks(10 ** low, 10 ** high, count=count)
        return [math.log10(value) for value in values if value > 0], step
    if not high > low:
        return [low], abs(low) or 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(low / step)
    values = [(start + index) * step for index in range(int(math.floor(high / step) - start) + 1)]
    return [0.0 if abs(value) < step * 1e-9 else value for value in values], step


def label(value: float, step: float | None) -> str:
    """A tick's text: as many digits as tell it from its neighbours `step` away, plain for ordinary
    magnitudes (1000, 0.05), with an exponent for very large or small ones (6e+34, 1e-7)."""
    step = step or abs(value)
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e6:
        return f"{value:.{max(0, -math.floor(math.log10(step)))}f}"
    mantissa, exponent = f"{value:.{max(0, math.floor(math.log10(abs(value))) - math.floor(math.log10(step)))}e}".split("e")
    return f"{mantissa}e{int(exponent):+d}"  # 1e+8, as JavaScript writes it, so that zoomed ticks read the same


def _range(values: list[float], log: bool) -> tuple[float, float]:
    """An axis range holding `values` with a margin; a constant is shown in the middle of an axis
    around it (a tenth of its size either way, half a decade on a log axis), never around 0."""
    low, high = min(values), max(values)
    if high == low:
        spread = 0.5 if log else (abs(low) * 0.1 or 1.0)
        return low - spread, high + spread
    margin = (high - low) * 0.05
    return low - margin, high + margin


def layout_labels(markers: list[tuple[float, str]]) -> list[tuple[float, int] | None]:
    """Where each marker's label goes, as (x of its left end, row) in chart pixels, for markers
    given as (x in pixels, label) in order of x: right of its line, or left of it where it would
    leave the plot, in the first row where it overlaps no label before it. A label with no room
    in `LABEL_ROWS` rows is left out (None): its line and the hover tooltip still name it."""
    rows: list[float] = []  # right end of the last label in each row
    placed: list[tuple[float, int] | None] = []
    for x, text in markers:
        width = CHAR_WIDTH * len(text)
        start = x + 3 if x + 3 + width <= WIDTH - RIGHT else x - 3 - width
        row = next((index for index, end in enumerate(rows) if start > end + 4), len(rows))
        if row >= LABEL_ROWS:
            placed.append(None)
            continue
        if row == len(rows):
            rows.append(0.0)
        rows[row] = start + width
        placed.append((start, row))
    return placed


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def render(chart: Chart) -> str:
    """The chart as a <figure> with its <svg> (a message instead of axes when there is nothing to plot)."""
    transform = (lambda y: math.log10(y)) if chart.log_y else (lambda y: y)

    def drawable(y: float) -> bool:
        return math.isfinite(y) and (y > 0 or not chart.log_y)

    head = f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}"><text x="{LEFT}" y="18" class="title">{escape(chart.title)}</text>'
    xs = [x for series in chart.series for x, y in series.points if drawable(y)]
    ys = [transform(y) for series in chart.series for _, y in series.points if drawable(y)]
    if not ys:
        return (f'<figure class="chart">{head}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
                f'class="empty">no data</text></svg></figure>')
    x0, x1 = min(xs + [m.x for m in chart.markers]), max(xs + [m.x for m in chart.markers])
    x1 = x1 if x1 > x0 else x0 + 1
    y0, y1 = _range(ys, chart.log_y)

    def px(x: float) -> float:  # in the plot's own pixels (the nested <svg>)
        return (x - x0) / (x1 - x0) * PLOT_WIDTH

    def py(y: float) -> float:
        return PLOT_HEIGHT - (transform(y) - y0) / (y1 - y0) * PLOT_HEIGHT

    data = {"x": [x0, x1], "y": [y0, y1], "log": chart.log_y, "x_label": chart.x_label,
            "series": [{"name": s.name, "color": s.color, "points": [[x, _json_number(y)] for x, y in s.points]} for s in chart.series],
            "markers": [{"x": m.x, "label": m.label, "color": m.color} for m in sorted(chart.markers, key=lambda m: m.x)]}
    parts = [f'<figure class="chart" data-chart="{escape(json.dumps(data, separators=(",", ":")))}">', head]
    legend_x = WIDTH - RIGHT
    for series in reversed(chart.series):  # legend on the title line, right-aligned: a colour swatch, then the name
        legend_x -= CHAR_WIDTH * len(series.name)
        parts.append(f'<text x="{legend_x}" y="18" class="legend">{escape(series.name)}</text>')
        parts.append(f'<rect x="{legend_x - 14}" y="10" width="10" height="10" rx="2" class="swatch" style="fill:{escape(series.color)}"/>')
        legend_x -= 24
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" class="frame"/>')
    parts.append('<g class="y-ticks">')
    values, step = ticks(y0, y1, chart.log_y)
    for tick in values:
        y = TOP + PLOT_HEIGHT - (tick - y0) / (y1 - y0) * PLOT_HEIGHT
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label(10 ** tick if chart.log_y else tick, step)}</text>')
    parts.append('</g><g class="x-ticks">')
    values, step = ticks(x0, x1)
    for tick in values:
        parts.append(f'<text x="{LEFT + px(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">{label(tick, step)}</text>')
    parts.append(f'</g><text x="{LEFT + PLOT_WIDTH / 2}" y="{HEIGHT - 4}" text-anchor="middle" class="axis">{escape(chart.x_label)}</text>')
    parts.append(f'<svg class="plot" x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
                 f'viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}">')
    for marker in chart.markers:
        x = px(marker.x)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{PLOT_HEIGHT}" class="marker" style="stroke:{escape(marker.color)}">'
                     f'<title>{escape(marker.label)} at {label(marker.x, 1)}</title></line>')
    for series in chart.series:
        coords = [(px(x), py(y)) for x, y in series.points if drawable(y)]
        if len(coords) == 1:
            parts.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" style="fill:{escape(series.color)}"/>')
        elif coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" class="line" style="stroke:{escape(series.color)}"/>')
    parts.append('</svg><g class="marker-labels">')
    markers = sorted(chart.markers, key=lambda m: m.x)
    for marker, place in zip(markers, layout_labels([(LEFT + px(m.x), m.label) for m in markers])):
        if place is not None:
            start, row = place
            parts.append(f'<text x="{start:.1f}" y="{TOP + 11 + 11 * row}" class="marker-label" style="fill:{escape(marker.color)}">{escape(marker.label)}</text>')
    parts.append("</g></svg></figure>")
    return "".join(parts)


STYLE = """
figure.chart{position:relative;margin:0}
figure.chart svg{width:100%;height:auto;background:#fff;border:1px solid #eaecee;display:block}
figure.chart svg.plot{border:0;background:none;overflow:hidden}
svg .title{font-size:13px;font-weight:600;fill:#1c2833} svg .tick,svg .axis{font-size:10px;fill:#566573}
svg .legend{font-size:10px;font-weight:600;fill:#1c2833} svg .grid{stroke:#eaecee} svg .frame{fill:none;stroke:#d5d8dc}
svg .empty{font-size:12px;fill:#99a3a4} svg .line{fill:none;stroke-width:1.6}
svg .marker{stroke-dasharray:4 3}
svg .marker-label{font-size:10px;font-weight:600;stroke:#fff;stroke-width:3px;paint-order:stroke;stroke-linejoin:round}
svg .guide{stroke:#566573;stroke-width:1} svg .selection{fill:#2471a3;fill-opacity:.12;stroke:#2471a3}
.chart-tip{position:absolute;pointer-events:none;background:rgba(28,40,51,.92);color:#fff;font-size:12px;line-height:1.35;
padding:.3rem .5rem;border-radius:4px;white-space:nowrap;z-index:1}
.chart-tip .key{display:inline-block;width:.6rem;height:.6rem;border-radius:2px;margin-right:.3rem}
.chart-hint{color:#99a3a4;font-size:.8rem;margin:.2rem 0 0}
"""
"""The charts' CSS, for every page that shows them (colours come from inline styles, which no rule overrides)."""

GEOMETRY = {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": RIGHT, "top": TOP, "bottom": BOTTOM,
            "char_width": CHAR_WIDTH, "label_rows": LABEL_ROWS}
SCRIPT = f"var TG_CHART = {json.dumps(GEOMETRY)};\n" + (files("trainguard.reports") / "charts.js").read_text(encoding="utf-8")
"""The charts' hover and zoom (inline in the page; the charts read fine without it)."""


def page_assets() -> str:
    """The <style> and <script> a page with charts includes (at the end of its body)."""
    return f"<style>{STYLE}</style><script>{SCRIPT}</script>"


def hint() -> str:
    """One line telling the reader how to use the charts."""
    return '<p class="chart-hint">Hover a chart for the exact values; drag a box to zoom into it; double-click to reset.</p>'
