"""`trainguard run [OPTIONS] -- COMMAND [ARGS...]`: the runtime guard's command line."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from trainguard.catalogue import RuleSelection, UnknownRuleError
from trainguard.console import make_console, print_findings, print_summary
from trainguard.output_paths import check_output_file, check_output_folder, write_output
from trainguard.report import build_report, exit_status, sort_findings, write_report
from trainguard.reports.html import render_page
from trainguard.runtime import launcher
from trainguard.runtime.thresholds import Thresholds, parse_assignments


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the verbs that report findings (contract: report, format, select...)."""
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, json for programs (the report alone on stdout; with `run`, "
                        "the command's own stdout then goes to stderr)")
    parser.add_argument("--report", metavar="PATH", help="write the JSON report to PATH")
    parser.add_argument("--select", metavar="RULES", help="only these rules (codes, slugs or prefixes, comma-separated)")
    parser.add_argument("--ignore", metavar="RULES", help="skip these rules (codes, slugs or prefixes, comma-separated)")
    parser.add_argument("--fail-on", choices=("error", "warning", "never"), default="error", help="exit 1 when a finding at or above this severity is found (default: error)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a training command under the runtime guard",
        description="Run COMMAND (python SCRIPT, python -m MODULE, torchrun ... SCRIPT) under the runtime guard. "
        "`trainguard run SCRIPT.py ARGS` is short for `trainguard run -- python SCRIPT.py ARGS`.",
        usage="trainguard run [OPTIONS] -- COMMAND [ARGS...]",
    )
    add_common_options(parser)
    parser.add_argument("--strict", action="store_true", help="stop the run at the first error finding")
    parser.add_argument("--metrics", metavar="PATH", help="write the metrics stream (JSON lines) to PATH (default with --report: next to it)")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots to PATH")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write the metrics as TensorBoard scalars (needs tensorboard)")
    parser.add_argument("--threshold", action="append", metavar="NAME=VALUE", help="override a numeric-health threshold (repeatable); see docs/runtime.md")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    parser.set_defaults(handler=run_command)


def _metrics_path(args: argparse.Namespace) -> Path | None:
    if args.metrics:
        return Path(args.metrics)
    if args.report:
        report = Path(args.report)
        return report.with_name(report.stem + ".metrics.jsonl")
    return None


def run_command(args: argparse.Namespace) -> int:
    from trainguard.cli import UsageError

    try:
        RuleSelection.build(args.select, args.ignore)
        thresholds = parse_assignments(args.threshold)
        Thresholds.build(thresholds)
        launch = launcher.plan(args.command)
    except (UnknownRuleError, ValueError) as error:
        raise UsageError(str(error)) from None
    metrics_path = _metrics_path(args)
    # Checked now, not after a training run that could take hours.
    for path, option in ((args.report, "--report"), (metrics_path, "--metrics"), (args.html, "--html")):
        check_output_file(path, option)
    check_output_folder(args.tensorboard, "--tensorboard")
    options = launcher.GuardOptions(
        select=args.select, ignore=args.ignore, strict=args.strict, echo=args.format == "text",
        thresholds=thresholds, metrics=bool(metrics_path or args.html), tensorboard_dir=args.tensorboard,
    )
    result = launcher.run(launch, options, stdout_to_stderr=args.format == "json")
    findings = sort_findings(result.findings)
    extra = {"command": launch.argv, "exit_code": result.returncode, "guarded_processes": result.guarded,
             "internal_errors": result.internal_errors}
    if metrics_path is not None:
        lines = "".join(json.dumps(record) + "\n" for record in result.metrics)
        if write_output(metrics_path, lambda path: path.write_text(lines, encoding="utf-8"), "run", "the metrics"):
            # Relative to the report's folder, so that `trainguard report` finds it after a move.
            extra["metrics"] = os.path.relpath(metrics_path, Path(args.report).parent if args.report else Path.cwd())
    report = build_report("run", findings, **extra)
    if args.report:
        write_output(args.report, lambda path: write_report(path, report), "run", "the report")
    if args.html:
        write_output(args.html, lambda path: path.write_text(render_page(report, result.metrics), encoding="utf-8"),
                     "run", "the HTML report")
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        console = make_console(sys.stderr)
        if findings:
            console.rule("trainguard summary", style="dim")
            print_findings(console, findings, compact=True)
        if result.guarded:
            print_summary(console, report["summary"], shlex.join(launch.argv))
        else:
            console.print(_nothing_guarded(result), style="yellow")
        if result.returncode:
            console.print(f"trainguard: the command exited with status {result.returncode}")
    return result.returncode or exit_status(findings, args.fail_on)


def _nothing_guarded(result: launcher.RunResult) -> str:
    """Why there is no verdict: "no findings" would claim checks that never ran."""
    if result.armed:
        return ("trainguard: nothing was guarded: the command's Python process never imported torch "
                "(or the guard could not start), so no check ran")
    return ("trainguard: no Python process was guarded, so no check ran (trainguard guards `python SCRIPT`, "
            "`python -m MODULE` and `torchrun` commands whose Python can import trainguard)")
