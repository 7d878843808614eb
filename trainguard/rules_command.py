"""`trainguard rules [RULE]`: list the catalogue, or explain one rule."""

from __future__ import annotations

import argparse
import json
import sys

from rich.markdown import Markdown
from rich.table import Table

from trainguard.catalogue import RULES, Rule, UnknownRuleError, get_rule
from trainguard.console import make_console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rules", help="list the rule catalogue or explain one rule")
    parser.add_argument("rule", nargs="?", help="a rule code (TG101) or slug (stale-gradients)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run_rules)


def _record(rule: Rule) -> dict[str, str]:
    """A rule's catalogue entry for programs (`--format json`)."""
    return {"code": rule.code, "slug": rule.slug, "severity": rule.severity.value, "where": rule.where, "summary": rule.summary, "fix": rule.fix}


def run_rules(args: argparse.Namespace) -> int:
    from trainguard.cli import UsageError

    console = make_console(sys.stdout)
    if args.rule is None:
        if args.format == "json":
            print(json.dumps([_record(rule) for rule in RULES], indent=2))
            return 0
        header = ("code", "slug", "severity", "where", "detects")
        rows: list[tuple[str, ...]] = [(r.code, r.slug, r.severity.value, r.where, r.summary) for r in RULES]
        if console.is_terminal:
            table = Table(box=None, pad_edge=False, header_style="bold")
            for column in header:
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            console.print(table)
        else:  # piped or redirected: whole rows, one per line, whatever the width (a table would crop them)
            widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
            for row in (header, *rows):
                print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
        console.print("\n`trainguard rules SLUG` explains one rule.")
        return 0
    try:
        rule = get_rule(args.rule)
    except UnknownRuleError as error:
        raise UsageError(str(error)) from None
    if args.format == "json":
        print(json.dumps({**_record(rule), "docs": rule.docs()}, indent=2))
    else:
        console.print(Markdown(rule.docs()), soft_wrap=False)  # soft wrap would crop list items
    return 0
