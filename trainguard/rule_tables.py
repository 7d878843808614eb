"""The rule tables of `docs/rules.md`, the README and `docs/runtime.md`, generated from the catalogue.

    python -m trainguard.rule_tables --write    # rewrite the tables in place
    python -m trainguard.rule_tables            # exit 1 when a committed table is stale

Each table sits between two marker comments (`<!-- rule-table:NAME -->` and
`<!-- /rule-table:NAME -->`); only the text between them is generated, the prose around them is
written by hand. A test fails when a committed table differs from the generated one.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Callable

from trainguard.catalogue import RULES, Rule
from trainguard.runtime.thresholds import Thresholds

ROOT = Path(__file__).resolve().parent.parent

DETECTED_BY = {"run": "runtime", "lint": "lint", "both": "runtime and lint"}


def seen_when(rule: Rule) -> str:
    """The rule's `seen_when` with each `{threshold}` replaced by that threshold's default."""
    defaults = Thresholds()
    return rule.seen_when.format(**{name: f"{getattr(defaults, name):g}" for name in rule.thresholds})


def index_table() -> str:
    """`docs/rules.md`: every rule, linked to its page."""
    rows = ["| code | slug | severity | detected by | detects |", "|---|---|---|---|---|"]
    rows += [
        f"| [{rule.code}](../{rule.doc_path}) | `{rule.slug}` | {rule.severity.value} | {DETECTED_BY[rule.where]} | {rule.summary} |"
        for rule in RULES
    ]
    return "\n".join(rows)


def runtime_table() -> str:
    """The README's "What the runtime guard catches": each runtime rule and when it is seen."""
    rows = ["| code | slug | seen when |", "|---|---|---|"]
    rows += [f"| {rule.code} | {rule.slug} | {seen_when(rule)} |" for rule in RULES if rule.runs]
    return "\n".join(rows)


def thresholds_table() -> str:
    """`docs/runtime.md`: every threshold, its default and the rules that read it."""
    rows = ["| threshold | default | read by |", "|---|---|---|"]
    for field in fields(Thresholds):
        readers = ", ".join(f"{rule.code} {rule.slug}" for rule in RULES if field.name in rule.thresholds)
        rows.append(f"| `{field.name}` | {getattr(Thresholds(), field.name):g} | {readers} |")
    return "\n".join(rows)


# file (relative to the repository root) -> table name -> what renders it
TABLES: dict[str, dict[str, Callable[[], str]]] = {
    "docs/rules.md": {"index": index_table},
    "README.md": {"runtime": runtime_table},
    "docs/runtime.md": {"thresholds": thresholds_table},
}


def replace_table(text: str, name: str, table: str) -> str:
    """`text` with the table between the markers of `name` replaced by `table`."""
    pattern = re.compile(rf"(<!-- rule-table:{name} -->\n).*?(\n<!-- /rule-table:{name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no <!-- rule-table:{name} --> ... <!-- /rule-table:{name} --> markers around a table")
    return pattern.sub(lambda match: match.group(1) + table + match.group(2), text, count=1)


def generated(path: str, text: str) -> str:
    """The file at `path` (its current `text`) with every table of it regenerated."""
    for name, render in TABLES[path].items():
        text = replace_table(text, name, render())
    return text


def stale_files(root: Path = ROOT) -> list[str]:
    """The files whose committed tables differ from the generated ones."""
    return [path for path in TABLES if generated(path, (root / path).read_text("utf-8")) != (root / path).read_text("utf-8")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainguard.rule_tables", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stale tables in place")
    args = parser.parse_args(argv)
    try:
        stale = stale_files(ROOT)
    except ValueError as error:
        print(f"trainguard.rule_tables: {error}", file=sys.stderr)
        return 2
    if args.write:
        for path in stale:
            target = ROOT / path
            target.write_text(generated(path, target.read_text("utf-8")), "utf-8")
            print(f"rewrote the rule tables of {path}")
        return 0
    for path in stale:
        print(f"{path}: rule tables differ from the catalogue; run python -m trainguard.rule_tables --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
