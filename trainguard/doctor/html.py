"""The training-readiness report as one self-contained HTML page: the verdict table, then per
probe its findings, evidence, table and chart (the per-layer gradient norms as bars, the
overfit-one-batch loss as a curve, throughput on a log scale), all inline SVG, CSS and the charts'
hover and zoom script; nothing is loaded from the network."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from trainguard.doctor.report import findings_of, format_cell
from trainguard.reports.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Chart, Series, label, page_assets, render, ticks

_LABEL_WIDTH = 72  # pixels one bar label needs (14 characters of 10 px text)
_VERDICT_COLORS = {"pass": "#1e8449", "warn": "#b9770e", "fail": "#c0392b", "skip": "#7f8c8d"}
_SEVERITY_COLORS = {"error": "#c0392b", "warning": "#b9770e", "info": "#2471a3"}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:64rem;color:#1c2833;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d5d8dc;padding-bottom:.2rem}
.meta{color:#566573;font-size:.9rem} code{background:#f4f6f7;padding:.05rem .3rem;border-radius:3px}
table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0} th,td{padding:.2rem .7rem .2rem 0;text-align:left;vertical-align:top}
th{border-bottom:1px solid #d5d8dc} td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;min-width:3rem;text-align:center;text-transform:uppercase;font-size:.72rem;font-weight:700;padding:.1rem .35rem;border-radius:3px;color:#fff}
.finding{border-left:4px solid;padding:.3rem .8rem;margin:.6rem 0;background:#fbfcfc} .fix{color:#1e8449}
.evidence{color:#566573;font-size:.82rem}
figure.chart{max-width:44rem;margin:.6rem 0} svg .bar{fill:#7d3c98}
"""


def _tag(text: str, color: str) -> str:
    return f'<span class="tag" style="background:{color}">{escape(text)}</span>'


def render_bars(title: str, points: list[tuple[str, float]], log_y: bool) -> str:
    """A bar chart as a <figure> with its <svg>; on a log scale, bars of 0 are drawn as a mark at the
    bottom. Each bar's value is in its tooltip, and written above it when the bars are wide enough."""
    values = [value for _, value in points if isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or not log_y)]
    head = (f'<figure class="chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
            f'<text x="{LEFT}" y="18" class="title">{escape(title)}</text>')
    if not values:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no data</text></svg></figure>'
    scale = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    low = math.floor(scale(min(values))) if log_y else 0.0
    high = math.ceil(scale(max(values))) if log_y else max(values) * 1.1
    high = high if high > low else low + 1

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - (scale(value) - low) / (high - low) * (HEIGHT - TOP - BOTTOM)

    parts = [head, f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" class="frame"/>']
    positions, step = ticks(low, high, log_y)
    for tick in positions:
        y = HEIGHT - BOTTOM - (tick - low) / (high - low) * (HEIGHT - TOP - BOTTOM)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label(10 ** tick if log_y else tick, step)}</text>')
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    label_every = math.ceil(_LABEL_WIDTH / slot)  # many layers: name every n-th bar, all in the tooltips
    for index, (name, value) in enumerate(points):
        x = LEFT + slot * index + slot * 0.15
        drawable = isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or not log_y)
        top = y_of(value) if drawable else HEIGHT - BOTTOM - 2
        parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" height="{HEIGHT - BOTTOM - top:.1f}" class="bar">'
                     f'<title>{escape(str(name))}: {format_cell(value)}</title></rect>')
        if slot >= _LABEL_WIDTH:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{top - 4:.1f}" text-anchor="middle" class="tick">{escape(format_cell(value))}</text>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">{escape(str(name)[:14])}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def _plot(plot: dict[str, Any]) -> str:
    if plot["kind"] == "bars":
        return render_bars(plot["title"], [(label, value) for label, value in plot["points"]], plot["log_y"])
    points = [(float(x), float(y)) for x, y in plot["points"]]
    return render(Chart(plot["title"], [Series("loss", points, "#2471a3")], log_y=plot["log_y"], x_label=plot["x_label"]))


def _table_html(columns: list[str], body: str) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    return f"<table><tr>{head}</tr>{body}</table>"


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    return _table_html(columns, "".join(
        "<tr>" + "".join(f'<td class="{"num" if isinstance(cell, (int, float)) else ""}">{escape(format_cell(cell))}</td>' for cell in row) + "</tr>"
        for row in rows
    ))


def _finding(finding: dict[str, Any]) -> str:
    color = _SEVERITY_COLORS[finding["severity"]]
    place = (finding["path"] + (f":{finding['line']}" if finding.get("line") else "")) if finding.get("path") else ""
    rule = f"{finding['code']} {finding['rule']}".strip()
    return (f'<div class="finding" style="border-color:{color}">{_tag(finding["severity"], color)} <strong>{escape(rule)}</strong>'
            + (f" <code>{escape(place)}</code>" if place else "")
            + f'<div>{escape(finding["message"])}</div><div class="fix">fix: {escape(finding.get("fix", ""))}</div></div>')


def _probe(report: dict[str, Any], probe: dict[str, Any]) -> str:
    parts = [f'<h2 id="{escape(probe["name"])}">{_tag(probe["verdict"], _VERDICT_COLORS[probe["verdict"]])} {escape(probe["title"])}</h2>',
             f"<p>{escape(probe['summary'])}.</p>"]
    parts += [_finding(finding) for finding in findings_of(report, probe["name"])]
    if probe["evidence"]:
        parts.append('<p class="evidence">evidence: ' + ", ".join(
            f"{escape(key)} = <code>{escape(format_cell(value))}</code>" for key, value in probe["evidence"].items()) + "</p>")
    if "table" in probe:
        parts.append(_table(probe["table"]["columns"], probe["table"]["rows"]))
    if "plot" in probe:
        parts.append(_plot(probe["plot"]))
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """The report dict as a self-contained HTML page."""
    verdicts = report["verdicts"]
    overview = _table_html(["probe", "verdict", "summary", "seconds"], "".join(
        f'<tr><td><a href="#{escape(probe["name"])}">{escape(probe["name"])}</a></td>'
        f'<td>{_tag(probe["verdict"], _VERDICT_COLORS[probe["verdict"]])}</td><td>{escape(probe["summary"])}</td>'
        f'<td class="num">{probe["seconds"]}</td></tr>'
        for probe in report["probes"]
    ))
    counts = ", ".join(f"{verdicts[name]} {label}" for name, label in (("pass", "passed"), ("warn", "warned"), ("fail", "failed"), ("skip", "skipped")))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>training-readiness report: {escape(report['target'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Training-readiness report</h1><div class=\"meta\"><code>trainguard doctor {escape(report['target'])}</code> · "
        f"{escape(report['device'])} · PyTorch {escape(report['torch_version'])} · trainguard {escape(report['version'])} · "
        f"{report['seconds']} s of a {report['budget']:g} s budget</div>"
        f"<p><strong>{escape(counts)}</strong></p>{overview}"
        + "".join(_probe(report, probe) for probe in report["probes"])
        + f"{page_assets()}</body></html>\n"
    )
