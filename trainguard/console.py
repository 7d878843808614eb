"""Findings for people: short, `file:line` first, coloured only when a terminal is attached."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Iterable

from rich.console import Console
from rich.text import Text

from trainguard.findings import Finding, Severity

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def make_console(stream: IO[str] | None = None) -> Console:
    return Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)


def _place(finding: Finding) -> str:
    if finding.path is None:
        return "<unknown>"
    place = finding.path if finding.line is None else f"{finding.path}:{finding.line}"
    return place if finding.column is None else f"{place}:{finding.column}"


def _when(finding: Finding) -> str:
    parts = []
    if finding.step is not None:
        parts.append(f"step {finding.step}")
    if finding.rank is not None:
        parts.append(f"rank {finding.rank}")
    count = finding.evidence.get("count", 1)
    if count > 1:
        parts.append(f"seen {count}x")
    return f" ({', '.join(parts)})" if parts else ""


def _evidence_text(evidence: dict[str, Any]) -> str:
    shown = {key: value for key, value in evidence.items() if key != "count"}
    return ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in shown.items())


def _head(finding: Finding) -> Text:
    """`path:line CODE slug`, the start of every way a finding is shown."""
    text = Text()
    text.append(_place(finding), style="bold")
    text.append(" ")
    text.append(f"{finding.code} {finding.rule}", style=_STYLE[finding.severity])
    return text


def format_finding(finding: Finding) -> Text:
    """One finding as a few lines: place, code, slug, message; then evidence and fix."""
    text = _head(finding)
    text.append(f" [{finding.severity.value}]{_when(finding)}\n")
    text.append(f"  {finding.message}\n")
    evidence = _evidence_text(finding.evidence)
    if evidence:
        text.append("  evidence: ", style="dim")
        text.append(f"{evidence}\n")
    if finding.fix:
        text.append("  fix: ", style="green")
        text.append(f"{finding.fix}\n")
    return text


def format_finding_line(finding: Finding) -> Text:
    """One finding on one line, for summaries: place, code, slug, when, message."""
    text = _head(finding)
    text.append(f"{_when(finding)}: {finding.message}")
    return text


def print_findings(console: Console, findings: Iterable[Finding], compact: bool = False) -> None:
    for finding in findings:
        console.print(format_finding_line(finding) if compact else format_finding(finding), end="\n" if compact else "")


def print_summary(console: Console, summary: dict[str, int], subject: str) -> None:
    total = sum(summary.values())
    if total == 0:
        console.print(Text(f"trainguard: no findings in {subject}", style="green"))
        return
    counts = ", ".join(f"{count} {name}" + ("s" if count != 1 else "") for name, count in summary.items() if count)
    console.print(Text(f"trainguard: {counts} in {subject}", style="bold"))
