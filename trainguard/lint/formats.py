"""Output formats of `trainguard lint`: text for people, the contract's JSON, SARIF, GitHub annotations."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import IO, Any

from trainguard import __version__
from trainguard.catalogue import RULES
from trainguard.findings import Finding, Severity
from trainguard.lint.engine import LintResult
from trainguard.report import build_report, sort_findings, summarize

SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
REPOSITORY_URL = "https://github.com/trainguard/trainguard"
# A rule page in the repository; the path comes from the rule (its catalogue entry).
REPOSITORY_FILE_URL = REPOSITORY_URL + "/blob/main/{path}"


def lint_report(result: LintResult) -> dict[str, Any]:
    """The contract's report, with the files checked and the files that could not be parsed."""
    return build_report("lint", result.findings, files=result.files, errors=[error.to_dict() for error in result.errors])


def write_text(result: LintResult, stream: IO[str]) -> None:
    """One line per finding in file order (`path:line:col CODE slug: message`), its fix, a summary."""
    # Imported here: rich is only needed for text output, and its import is a sizeable part of
    # a `--format json` run's start-up.
    from rich.text import Text

    from trainguard.console import format_finding_line, make_console, print_summary

    console = make_console(stream)
    for finding in sorted(result.findings, key=lambda f: (f.path or "", f.line or 0, f.column or 0, f.code)):
        line = format_finding_line(finding)
        line.append(f" [{finding.severity.value}]", style="dim")
        console.print(line)
        if finding.fix:
            console.print(Text("  fix: ", style="green") + Text(finding.fix))
    print_summary(console, summarize(result.findings), f"{result.files} file{'s' if result.files != 1 else ''}")


def write_json(result: LintResult, stream: IO[str]) -> None:
    """The contract's report as JSON."""
    stream.write(json.dumps(lint_report(result), indent=2) + "\n")


def write_sarif(result: LintResult, stream: IO[str]) -> None:
    """SARIF 2.1.0, as GitHub code scanning reads it; parse failures become tool notifications."""
    rules = [rule for rule in RULES if rule.lints]
    index = {rule.code: position for position, rule in enumerate(rules)}
    driver = {
        "name": "trainguard",
        "version": __version__,
        "informationUri": REPOSITORY_URL,
        "rules": [
            {
                "id": rule.code,
                "name": rule.slug,
                "shortDescription": {"text": rule.summary},
                "help": {"text": f"Fix: {rule.fix}."},
                "helpUri": REPOSITORY_FILE_URL.format(path=rule.doc_path),
                "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
            }
            for rule in rules
        ],
    }
    results = [_sarif_result(finding, index) for finding in sort_findings(result.findings)]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{error.path}: {error.message}"},
            "locations": [_sarif_location(error.path, error.line, error.column)],
        }
        for error in result.errors
    ]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "results": results,
                "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
            }
        ],
    }
    stream.write(json.dumps(sarif, indent=2) + "\n")


def _sarif_result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    message = finding.message + (f" Fix: {finding.fix}." if finding.fix else "")
    return {
        "ruleId": finding.code,
        "ruleIndex": index[finding.code],
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": message},
        "locations": [_sarif_location(finding.path, finding.line, finding.column)],
        "properties": {"slug": finding.rule, "evidence": finding.evidence},
    }


def _sarif_location(path: str | None, line: int | None, column: int | None) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": max(line or 1, 1)}
    if column:
        region["startColumn"] = column
    uri = PurePosixPath(path or "").as_posix()
    return {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"}, "region": region}}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write_github(result: LintResult, stream: IO[str]) -> None:
    """GitHub Actions workflow commands: one annotation per finding and per unparsable file."""
    for finding in sort_findings(result.findings):
        place = f"file={_escape_property(finding.path or '')},line={finding.line or 1}"
        if finding.column:
            place += f",col={finding.column}"
        title = _escape_property(f"{finding.code} {finding.rule}")
        message = _escape_data(finding.message + (f" (fix: {finding.fix})" if finding.fix else ""))
        stream.write(f"::{GITHUB_LEVEL[finding.severity]} {place},title={title}::{message}\n")
    for error in result.errors:
        place = f"file={_escape_property(error.path)},line={error.line or 1}"
        stream.write(f"::error {place},title=trainguard lint::{_escape_data('cannot lint this file: ' + error.message)}\n")


WRITERS = {"text": write_text, "json": write_json, "sarif": write_sarif, "github": write_github}
