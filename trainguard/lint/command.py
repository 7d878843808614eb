"""`trainguard lint PATH...`: the command line of the static checks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainguard.catalogue import UnknownRuleError, match_rules, split_names
from trainguard.lint.config import ConfigError, LintConfig, find_config, load_config
from trainguard.lint.engine import lint_paths
from trainguard.lint.formats import WRITERS, lint_report
from trainguard.output_paths import check_output_file, write_output
from trainguard.report import exit_status, write_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `lint` verb."""
    parser = subparsers.add_parser(
        "lint",
        help="check training scripts statically",
        description="Check PyTorch training code for the catalogue's bugs without running it.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files and folders to check")
    parser.add_argument("--format", choices=tuple(WRITERS), default="text", help="output format (default: text)")
    parser.add_argument("--report", metavar="PATH", help="also write the JSON report to PATH")
    parser.add_argument("--select", metavar="RULES", help="only these rules (codes, slugs or prefixes such as TG1)")
    parser.add_argument("--ignore", metavar="RULES", help="skip these rules")
    parser.add_argument("--exclude", metavar="PATTERN", action="append", help="skip files matching a .gitignore-style pattern (repeatable)")
    parser.add_argument("--fail-on", choices=("error", "warning", "never"), help="lowest severity that makes the exit status 1 (default: error)")
    parser.add_argument("--config", metavar="PATH", help="a pyproject.toml to read [tool.trainguard] from (default: the nearest one)")
    parser.set_defaults(handler=run_lint)


def run_lint(args: argparse.Namespace) -> int:
    """Lint, print in the chosen format, write the report; the exit status follows --fail-on."""
    from trainguard.cli import UsageError

    paths = [Path(path) for path in args.paths]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise UsageError(f"{missing[0]} does not exist")
    try:
        for names in (args.select, args.ignore):
            match_rules(split_names(names))
        config = _config(args, paths).with_options(args.select, args.ignore, args.exclude, args.fail_on)
        for names in (config.select, config.ignore, *config.per_file_ignores.values()):
            match_rules(names)
    except (UnknownRuleError, ConfigError) as error:
        raise UsageError(str(error)) from None
    check_output_file(args.report, "--report")
    result = lint_paths(paths, config)
    for failure in result.errors:
        place = f"{failure.path}:{failure.line}" if failure.line else failure.path
        sys.stderr.write(f"trainguard lint: cannot lint {place}: {failure.message}\n")
    WRITERS[args.format](result, sys.stdout)
    if args.report:
        write_output(args.report, lambda path: write_report(path, lint_report(result)), "lint", "the report")
    status = exit_status(result.findings, config.fail_on)  # type: ignore[arg-type]
    # A file that could not be checked fails the gate too: silence is not a pass.
    return max(status, int(bool(result.errors) and config.fail_on != "never"))


def _config(args: argparse.Namespace, paths: list[Path]) -> LintConfig:
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"the configuration file {args.config} does not exist")
        return load_config(path)
    return load_config(find_config(paths[0].resolve()))
