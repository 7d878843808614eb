"""`trainguard doctor TARGET [OPTIONS]`: probe a training set-up and write the readiness report."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from trainguard.console import make_console, print_findings, print_summary
from trainguard.output_paths import check_output_file, write_output
from trainguard.report import exit_status, read_findings, write_report

if TYPE_CHECKING:
    from trainguard.doctor.probe import Probe, ProbeResult

DEFAULT_BUDGET = 60.0
_VERDICT_STYLES = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "skip": "dim"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `trainguard doctor` and its options to the command line."""
    parser = subparsers.add_parser(
        "doctor", help="probe a training set-up and write a training-readiness report",
        description="Probe the set-up returned by TARGET (module:function or path/to/file.py:function; a dict with "
                    "model, loss_fn, optimizer, train_data and optionally val_data) and report whether it is ready to train.",
    )
    parser.add_argument("target", metavar="TARGET", help="module:function or path/to/file.py:function returning the set-up")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs (on stdout)")
    parser.add_argument("--report", metavar="PATH", help="write the JSON report to PATH")
    parser.add_argument("--markdown", metavar="PATH", help="write the report as Markdown to PATH")
    parser.add_argument("--html", metavar="PATH", help="write the report as a self-contained HTML page to PATH")
    parser.add_argument("--only", metavar="PROBES", help="run only these probes (comma-separated names; docs/doctor.md lists them)")
    parser.add_argument("--skip", metavar="PROBES", help="skip these probes (comma-separated)")
    parser.add_argument("--budget", metavar="SECONDS", type=float, default=DEFAULT_BUDGET,
                        help=f"time for all probes (default {DEFAULT_BUDGET:g}); probes that find it spent are skipped")
    parser.add_argument("--fail-on", choices=("error", "warning", "never"), default="error",
                        help="exit 1 when a finding at or above this severity is found (default: error)")
    parser.set_defaults(handler=run_doctor)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[tuple[Callable[[Probe], None], Callable[[ProbeResult], None]]]:
    """Callbacks showing the running probe (a live bar on a terminal) and a line per finished probe, on stderr."""
    console = make_console(sys.stderr)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("doctor", total=total)

        def started(probe: Probe) -> None:
            progress.update(task, description=f"probing {probe.name}")

        def finished(result: ProbeResult) -> None:
            progress.advance(task)
            line = Text(f"  {result.verdict.value:<4} ", style=_VERDICT_STYLES[result.verdict.value])
            line.append(f"{result.name} ({result.seconds:.2f} s)")
            progress.console.print(line)
        yield started, finished


def _print_text(report: dict[str, Any]) -> None:
    console = make_console(sys.stdout)
    table = Table(title=f"training readiness: {report['target']}", title_justify="left", box=None, pad_edge=False, header_style="bold")
    for column in ("probe", "verdict", "summary"):
        table.add_column(column, overflow="fold")
    for probe in report["probes"]:
        table.add_row(probe["name"], Text(probe["verdict"], style=_VERDICT_STYLES[probe["verdict"]]), probe["summary"])
    console.print(table)
    findings = read_findings(report)
    if findings:
        console.print()
        print_findings(console, findings)
    print_summary(console, report["summary"], f"{report['target']} ({report['seconds']} s)")


def run_doctor(args: argparse.Namespace) -> int:
    """Load the TARGET, run the probes with progress on stderr, print and write the report."""
    # PyTorch is imported here, not when the command line is built, so other verbs start fast.
    from trainguard.cli import UsageError
    from trainguard.doctor.html import render_html
    from trainguard.doctor.markdown import render_markdown
    from trainguard.doctor.report import doctor_report
    from trainguard.doctor.runner import default_device, run_probes, select_probes
    from trainguard.doctor.setup import TargetError, load_target

    if not args.budget > 0:
        raise UsageError("--budget must be a positive number of seconds")
    for path, option in ((args.report, "--report"), (args.markdown, "--markdown"), (args.html, "--html")):
        check_output_file(path, option)
    started = time.perf_counter()
    # The set-up's own prints go to stderr, so that stdout stays the report (JSON with --format json).
    with contextlib.redirect_stdout(sys.stderr):
        try:
            probes = select_probes(args.only, args.skip)
            target = load_target(args.target)
        except (TargetError, ValueError) as error:
            raise UsageError(str(error)) from None
        device = default_device()
        with _progress(len(probes)) as (on_start, on_done):
            results = run_probes(target, probes, args.budget, device, on_start=on_start, on_done=on_done)
    report = doctor_report(args.target, results, device, time.perf_counter() - started, args.budget)
    if args.report:
        write_output(args.report, lambda path: write_report(path, report), "doctor", "the report")
    for path, render, what in ((args.markdown, render_markdown, "the Markdown report"), (args.html, render_html, "the HTML report")):
        if path:  # write_output calls the lambda at once, while `render` is this iteration's
            write_output(path, lambda target: target.write_text(render(report), encoding="utf-8"), "doctor", what)  # noqa: B023
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return exit_status(read_findings(report), args.fail_on)
