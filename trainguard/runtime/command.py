"""`trainguard run [OPTIONS] -- COMMAND [ARGS...]`: the runtime guard's command line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from trainguard.catalogue import RuleSelection, UnknownRuleError
from trainguard.console import make_console, print_findings, print_summary
from trainguard.report import build_report, exit_status, sort_findings, write_report
from trainguard.runtime import launcher


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the verbs that report findings (contract: report, format, select...)."""
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text for people, json for programs (on stdout)")
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
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from trainguard.cli import UsageError

    try:
        RuleSelection.build(args.select, args.ignore)
        launch = launcher.plan(args.command)
    except (UnknownRuleError, launcher.CommandError) as error:
        raise UsageError(str(error)) from None
    result = launcher.run(launch, select=args.select, ignore=args.ignore, strict=args.strict, echo=args.format == "text")
    findings = sort_findings(result.findings)
    report = build_report("run", findings, command=launch.argv, exit_code=result.returncode, internal_errors=result.internal_errors)
    if args.report:
        write_report(args.report, report)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        console = make_console(sys.stderr)
        if findings:
            console.rule("trainguard summary", style="dim")
            print_findings(console, findings, compact=True)
        print_summary(console, report["summary"], shlex.join(launch.argv))
        if result.returncode:
            console.print(f"trainguard: the command exited with status {result.returncode}")
    return result.returncode or exit_status(findings, args.fail_on)
