"""The doctor's JSON report: the contract's shape (`mode: "doctor"`, findings, summary) plus the
target, the device, the time taken and one entry per probe (verdict, summary, evidence, fix,
table, plot). The Markdown and HTML writers and the text output all read this dict."""

from __future__ import annotations

import json
from typing import Any, Iterable

import torch

from trainguard.doctor.probe import ProbeResult
from trainguard.report import build_report, json_safe


def doctor_report(target: str, results: Iterable[ProbeResult], device: torch.device, seconds: float, budget: float) -> dict[str, Any]:
    """The report dict for a doctor run."""
    ordered = list(results)
    findings = [finding for result in ordered for finding in result.findings]
    verdicts = {verdict: sum(result.verdict.value == verdict for result in ordered) for verdict in ("pass", "warn", "fail", "skip")}
    report = build_report("doctor", findings, target=target, device=str(device), torch_version=torch.__version__,
                          seconds=round(seconds, 2), budget=budget, verdicts=verdicts,
                          probes=[result.to_dict() for result in ordered])
    return json_safe(report)


def format_cell(value: Any) -> str:
    """A value for people: large floats as whole numbers with separators, others to 4 significant
    digits, None as an empty cell, lists and dicts as JSON."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e3 <= abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value)
    return str(value)


def findings_of(report: dict[str, Any], probe: str) -> list[dict[str, Any]]:
    """The report's findings made by one probe (most severe first, as the report orders them)."""
    return [finding for finding in report["findings"] if finding["evidence"].get("probe") == probe]
