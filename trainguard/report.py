"""The JSON report of the contract: building, reading, merging, and the exit status it implies."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Literal

from trainguard import __version__
from trainguard.findings import Finding, Severity

Mode = Literal["run", "lint", "doctor"]
FailOn = Literal["error", "warning", "never"]


def json_safe(value: Any) -> Any:
    """`value` with NaN/Inf floats as the strings "nan"/"inf"/"-inf" (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by place, so that reports are stable."""
    return sorted(
        findings,
        key=lambda f: (-f.severity.rank, f.path or "", f.line or 0, f.code, f.rank or 0),
    )


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    summary = {severity.value: 0 for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
    for finding in findings:
        summary[finding.severity.value] += 1
    return summary


def build_report(mode: Mode, findings: Iterable[Finding], **extra: Any) -> dict[str, Any]:
    """The report dict: tool, version, mode, findings, summary (+ any mode-specific keys)."""
    ordered = sort_findings(findings)
    report: dict[str, Any] = {
        "tool": "trainguard",
        "version": __version__,
        "mode": mode,
        "findings": [finding.to_dict() for finding in ordered],
        "summary": summarize(ordered),
    }
    report.update(extra)
    return report


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def read_findings(report: dict[str, Any]) -> list[Finding]:
    return [Finding.from_dict(item) for item in report.get("findings", [])]


def exit_status(findings: Iterable[Finding], fail_on: FailOn) -> int:
    """0 when nothing at or above `fail_on` was found, else 1."""
    if fail_on == "never":
        return 0
    threshold = Severity(fail_on)
    return int(any(finding.severity >= threshold for finding in findings))
