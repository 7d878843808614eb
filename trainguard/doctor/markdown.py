"""The training-readiness report as Markdown: the verdict table, then per probe its summary,
evidence, findings with their fixes, and its table of numbers."""

from __future__ import annotations

from typing import Any

from trainguard.doctor.report import findings_of, format_cell

VERDICT_MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
    return [line(columns), line(["---"] * len(columns)), *(line([format_cell(cell) for cell in row]) for row in rows)]


def _finding(finding: dict[str, Any]) -> list[str]:
    place = finding["path"] + (f":{finding['line']}" if finding.get("line") else "") if finding.get("path") else ""
    code = f"{finding['code']} " if finding["code"] else ""
    lines = [f"- **{finding['severity']}** `{code}{finding['rule']}`" + (f" at `{place}`" if place else "") + f": {finding['message']}"]
    if finding.get("fix"):
        lines.append(f"  - fix: {finding['fix']}")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report dict as a Markdown document."""
    verdicts = report["verdicts"]
    lines = [
        "# Training-readiness report",
        "",
        f"`trainguard doctor {report['target']}` on {report['device']} (PyTorch {report['torch_version']}), "
        f"{report['seconds']} s of a {report['budget']:g} s budget.",
        "",
        f"**{verdicts['pass']} passed, {verdicts['warn']} warned, {verdicts['fail']} failed, {verdicts['skip']} skipped**; "
        f"findings: {report['summary']['error']} error, {report['summary']['warning']} warning, {report['summary']['info']} info.",
        "",
        *_table(["probe", "verdict", "summary", "seconds"],
                [[probe["name"], VERDICT_MARKS[probe["verdict"]], probe["summary"], probe["seconds"]] for probe in report["probes"]]),
    ]
    for probe in report["probes"]:
        lines += ["", f"## {probe['title']} — {VERDICT_MARKS[probe['verdict']]}", "", probe["summary"] + "."]
        findings = findings_of(report, probe["name"])
        if findings:
            lines += [""] + [line for finding in findings for line in _finding(finding)]
        if probe["evidence"]:
            lines += ["", "Evidence: " + ", ".join(f"{key} = `{format_cell(value)}`" for key, value in probe["evidence"].items())]
        if "table" in probe:
            lines += ["", *_table(probe["table"]["columns"], probe["table"]["rows"])]
    return "\n".join(lines) + "\n"
