"""The run report as one self-contained HTML page: findings with evidence and fix, and plots of
the training loss, validation loss, gradient norm and learning rate with the findings marked.
Nothing is loaded from the network: styles, charts (inline SVG) and their hover and zoom script
are in the page."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any, Iterable

from trainguard.reports.charts import Chart, Marker, Series, hint, page_assets, render

_COLORS = {"error": "#c0392b", "warning": "#b9770e", "info": "#2471a3"}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;color:#1c2833;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5d8dc}
.meta{color:#566573;font-size:.9rem} code{background:#f4f6f7;padding:.05rem .3rem;border-radius:3px}
.summary span{display:inline-block;margin-right:1rem;font-weight:600}
.finding{border-left:4px solid;padding:.4rem .8rem;margin:.8rem 0;background:#fbfcfc}
.finding .head{font-weight:600} .finding .fix{color:#1e8449} .finding table{font-size:.85rem;margin-top:.3rem}
.finding td{padding:0 .6rem 0 0;vertical-align:top} .sev{text-transform:uppercase;font-size:.75rem;padding:.05rem .35rem;border-radius:3px;color:#fff}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(30rem,1fr));gap:1rem}
"""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Metrics records; unreadable lines (a run killed mid-write) are skipped."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _value(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, str):  # "nan" / "inf", written as strings; any other text is no value
        try:
            return float(value)
        except ValueError:
            return None
    return float(value) if isinstance(value, (int, float)) else None


def _points(records: Iterable[dict[str, Any]], kind: str, key: str) -> list[tuple[float, float]]:
    return [(float(r["step"]), v) for r in records if r.get("type") == kind and (v := _value(r, key)) is not None]


def _markers(findings: list[dict[str, Any]]) -> list[Marker]:
    return [Marker(f["step"], f["code"], _COLORS.get(f["severity"], "#566573")) for f in findings if f.get("step") is not None]


def charts(report: dict[str, Any], metrics: list[dict[str, Any]]) -> list[Chart]:
    rank0 = [r for r in metrics if r.get("rank") in (None, 0)]
    markers = _markers(report.get("findings", []))
    return [
        Chart("loss", [Series("train", _points(rank0, "step", "loss"), "#2471a3"),
                       Series("validation", _points(rank0, "eval", "val_loss"), "#d35400")], markers),
        Chart("gradient norm (total)", [Series("grad norm", _points(rank0, "step", "grad_norm"), "#7d3c98")], markers, log_y=True),
        Chart("learning rate", [Series("lr", _points(rank0, "step", "lr"), "#117a65")], markers),
        Chart("update / weight ratio", [Series("update ratio", _points(rank0, "step", "update_ratio"), "#a04000")], markers, log_y=True),
    ]


def _finding_html(finding: dict[str, Any]) -> str:
    color = _COLORS.get(finding["severity"], "#566573")
    place = escape(f"{finding.get('path') or '<unknown>'}" + (f":{finding['line']}" if finding.get("line") else ""))
    when = ", ".join(part for part in (
        f"step {finding['step']}" if finding.get("step") is not None else "",
        f"rank {finding['rank']}" if finding.get("rank") is not None else "",
    ) if part)
    evidence = "".join(
        f"<tr><td>{escape(str(k))}</td><td><code>{escape(json.dumps(v, default=str))}</code></td></tr>"
        for k, v in finding.get("evidence", {}).items()
    )
    return (
        f'<div class="finding" style="border-color:{color}">'
        f'<div class="head"><span class="sev" style="background:{color}">{escape(finding["severity"])}</span> '
        f'<code>{place}</code> {escape(finding["code"])} {escape(finding["rule"])}'
        f'{" (" + escape(when) + ")" if when else ""}</div>'
        f'<div>{escape(finding["message"])}</div>'
        f'<div class="fix">fix: {escape(finding.get("fix") or "")}</div>'
        f"<table>{evidence}</table></div>"
    )


def render_page(report: dict[str, Any], metrics: list[dict[str, Any]]) -> str:
    """The whole page as a string."""
    findings = report.get("findings", [])
    summary = report.get("summary", {})
    command = " ".join(report.get("command", [])) or "(in-process)"
    counts = "".join(
        f'<span style="color:{_COLORS[name]}">{summary.get(name, 0)} {name}</span>' for name in ("error", "warning", "info")
    )
    findings_html = "".join(_finding_html(f) for f in findings) or "<p>No findings.</p>"
    chart_html = (hint() + '<div class="charts">' + "".join(render(chart) for chart in charts(report, metrics)) + "</div>"
                  if metrics else "<p>No metrics were recorded for this run.</p>")
    errors = report.get("internal_errors") or []
    errors_html = (
        "<h2>Internal errors</h2><ul>" + "".join(f"<li><code>{escape(e.get('internal_error', ''))}</code>: {escape(e.get('detail', ''))}</li>" for e in errors) + "</ul>"
        if errors else ""
    )
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>trainguard report</title><style>{_STYLE}</style></head><body>"
        f"<h1>trainguard report</h1><div class=\"meta\">trainguard {escape(str(report.get('version', '')))} · "
        f"<code>{escape(command)}</code> · the command exited with status {escape(str(report.get('exit_code', '')))}</div>"
        f'<h2>Findings</h2><div class="summary">{counts}</div>{findings_html}'
        f"<h2>Training curves</h2>{chart_html}{errors_html}"
        f"{page_assets()}</body></html>\n"
    )

