"""`trainguard report REPORT.json [--html PATH]`: a run's report as a self-contained HTML page."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainguard.output_paths import check_output_file, write_output
from trainguard.reports.html import read_metrics, render_page

_SEVERITIES = ("error", "warning", "info")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="turn a run's JSON report (and its metrics) into an HTML page")
    parser.add_argument("report", metavar="REPORT.json", help="a report written by `trainguard run --report`")
    parser.add_argument("--html", metavar="PATH", help="where to write the page (default: REPORT.html)")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Read and check the report and its metrics, write the page; exit 2 for a file that is not one."""
    from trainguard.cli import UsageError

    source = Path(args.report)
    target = Path(args.html) if args.html else source.with_suffix(".html")
    check_output_file(target, "--html")
    try:
        report = load_report(source)
        metrics = load_metrics(source, report)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not write_output(target, lambda path: path.write_text(render_page(report, metrics), encoding="utf-8"), "report", "the page"):
        return 1
    print(f"trainguard: wrote {target}")
    return 0


def load_report(source: Path) -> dict[str, Any]:
    """The report at `source`, checked to have the shape the page needs; ValueError (one sentence) if not."""
    if not source.is_file():
        raise ValueError(f"no such report: {source}")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{source} cannot be read ({error})") from None
    if not text.strip():
        raise ValueError(f"{source} is empty, not a trainguard JSON report")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not a trainguard JSON report (not JSON: {error})") from None
    if not isinstance(report, dict) or report.get("tool") != "trainguard":
        raise ValueError(f"{source} is not a trainguard JSON report (no \"tool\": \"trainguard\")")
    problem = _shape_problem(report)
    if problem:
        raise ValueError(f"{source} is not a valid trainguard JSON report: {problem}")
    return report


def _shape_problem(report: dict[str, Any]) -> str | None:
    """What is wrong with the parts of a report that the page shows, or None."""
    findings = report.get("findings", [])
    if not isinstance(findings, list):
        return "\"findings\" must be a list"
    for index, finding in enumerate(findings):
        where = f"findings[{index}]"
        if not isinstance(finding, dict):
            return f"{where} must be an object"
        for key in ("rule", "code", "message"):
            if not isinstance(finding.get(key), str):
                return f"{where}.{key} must be a string"
        if finding.get("severity") not in _SEVERITIES:
            return f"{where}.severity must be one of {', '.join(_SEVERITIES)}"
        if finding.get("step") is not None and not _is_number(finding["step"]):
            return f"{where}.step must be a number or null"
        if not isinstance(finding.get("evidence", {}), dict):
            return f"{where}.evidence must be an object"
    expected_types = {"summary": dict, "command": list, "internal_errors": list, "metrics": str}
    for key, kind in expected_types.items():
        if report.get(key) is not None and not isinstance(report[key], kind):
            return f"\"{key}\" must be {'an object' if kind is dict else 'a list' if kind is list else 'a string'}"
    if not all(isinstance(error, dict) for error in report.get("internal_errors") or []):
        return "\"internal_errors\" must hold objects"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_metrics(source: Path, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics records the report names (relative to its folder); records without a numeric
    step are skipped with a warning, a missing file gives a page without curves and a warning."""
    name = report.get("metrics")
    if not name:
        return []
    path = source.parent / name
    if not path.is_file():
        sys.stderr.write(f"trainguard report: the metrics file {path} named by the report does not exist; "
                         "the page has no curves\n")
        return []
    try:
        records = read_metrics(path)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"the metrics file {path} cannot be read ({error})") from None
    usable = [record for record in records if isinstance(record, dict) and _is_number(record.get("step"))]
    if len(usable) < len(records):
        sys.stderr.write(f"trainguard report: skipped {len(records) - len(usable)} malformed record(s) of {path}\n")
    return usable
