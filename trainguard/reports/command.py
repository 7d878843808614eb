"""`trainguard report REPORT.json [--html PATH]`: a run's report as a self-contained HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainguard.reports.html import write_html


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="turn a run's JSON report (and its metrics) into an HTML page")
    parser.add_argument("report", metavar="REPORT.json", help="a report written by `trainguard run --report`")
    parser.add_argument("--html", metavar="PATH", help="where to write the page (default: REPORT.html)")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from trainguard.cli import UsageError

    source = Path(args.report)
    if not source.is_file():
        raise UsageError(f"no such report: {source}")
    try:
        report = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{source} is not a trainguard JSON report ({error})") from None
    if not isinstance(report, dict) or report.get("tool") != "trainguard":
        raise UsageError(f"{source} is not a trainguard JSON report")
    target = Path(args.html) if args.html else source.with_suffix(".html")
    write_html(source, target)
    print(f"trainguard: wrote {target}")
    return 0
