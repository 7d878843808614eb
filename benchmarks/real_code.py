"""Lint public training code, and optionally run some of its scripts under the guard, and count the findings.

Measures this checkout of trainguard (the `trainguard` package next to this folder comes first on
the path) on folders of real code that stay outside the repository (snapshots of public repositories
are never copied in). For each folder it runs `trainguard lint --format json` as one whole process
and prints: files linted, wall time, and the findings by rule and severity. With `--scripts FILE` it
also runs each listed command under `trainguard run --report ...` and prints its findings, its exit
status, its wall time, the guard's internal errors from the report and any line of its output that
looks like an internal error or a traceback. No network.

    python benchmarks/real_code.py FOLDER [FOLDER ...] [--scripts FILE] [--timeout 120] [--json OUT]

A scripts FILE has one command per line, `LABEL | WORKING_DIR | COMMAND` (the command is split like a
shell would, without a shell; `#` starts a comment line). Environment variables written before the
command as `LABEL | DIR | ENV=VALUE ... COMMAND` are passed to it (PYTHONPATH comes after this
checkout's), and a leading `python` means the interpreter running this benchmark. docs/real-code.md
says which folders and scripts the published table used.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEVERITIES = ("error", "warning", "info")
# Phrases the guard prints when one of its own components failed (its faults are contained, not silent).
INTERNAL_ERROR_MARKERS = ("internal error", "trainguard error", "Traceback (most recent call last)")


@dataclass
class Counts:
    """Findings of one lint or guarded run, by (code, slug) and by severity."""

    by_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, findings: list[dict]) -> None:
        for finding in findings:
            self.by_rule[(finding["code"], finding["rule"], finding["severity"])] += 1

    def by_severity(self) -> dict[str, int]:
        totals = dict.fromkeys(SEVERITIES, 0)
        for (_, _, severity), count in self.by_rule.items():
            totals[severity] = totals.get(severity, 0) + count
        return totals

    def lines(self) -> list[str]:
        return [
            f"    {code} {slug} [{severity}]: {count}"
            for (code, slug, severity), count in sorted(self.by_rule.items())
        ]


def trainguard_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainguard", *args]


def checkout_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with this checkout first on PYTHONPATH (it wins over an installed copy)."""
    env = dict(os.environ)
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def lint_folder(folder: Path) -> dict:
    start = time.perf_counter()
    completed = subprocess.run(
        trainguard_command("lint", "--format", "json", "--fail-on", "never", str(folder)),
        capture_output=True,
        text=True,
        env=checkout_environment(),
        check=False,
    )
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"trainguard lint failed on {folder} (exit {completed.returncode}): {completed.stderr.strip()}")
    report = json.loads(completed.stdout)
    return {"folder": str(folder), "seconds": seconds, "report": report}


def print_lint(result: dict) -> None:
    report = result["report"]
    counts = Counts()
    counts.add(report["findings"])
    severities = counts.by_severity()
    print(
        f"{Path(result['folder']).name}: {report['files']} files linted in {result['seconds']:.1f} s "
        f"({1000 * result['seconds'] / max(report['files'], 1):.0f} ms/file), "
        f"{len(report.get('errors', []))} unreadable; findings: "
        + ", ".join(f"{severities[s]} {s}" for s in SEVERITIES)
    )
    for line in counts.lines():
        print(line)
    for finding in report["findings"]:
        if finding["severity"] != "info":
            print(f"      {finding['path']}:{finding['line']} {finding['code']} {finding['rule']}: {finding['message']}")


@dataclass
class ScriptSpec:
    label: str
    directory: Path
    environment: dict[str, str]
    command: list[str]


def read_scripts(path: Path) -> list[ScriptSpec]:
    specs = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split("|", 2)]
        if len(parts) != 3:
            raise SystemExit(f"{path}:{number}: expected 'LABEL | WORKING_DIR | COMMAND'")
        words = shlex.split(parts[2])
        environment = {}
        while words and "=" in words[0] and not words[0].startswith("-"):
            key, _, value = words.pop(0).partition("=")
            environment[key] = value
        if words and words[0] == "python":  # the interpreter running this benchmark, whatever `python` is on PATH
            words[0] = sys.executable
        specs.append(ScriptSpec(parts[0], Path(parts[1]).expanduser(), environment, words))
    return specs


def run_script(spec: ScriptSpec, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="trainguard-real-code-") as scratch:
        report_path = Path(scratch) / "report.json"
        start = time.perf_counter()
        # Its own session, so that a timeout ends the guarded script too, not only `trainguard run`.
        process = subprocess.Popen(
            trainguard_command("run", "--fail-on", "never", "--report", str(report_path), "--", *spec.command),
            cwd=spec.directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=checkout_environment(spec.environment),
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
            status: int | str = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            status = f"timed out after {timeout:.0f} s"
        seconds = time.perf_counter() - start
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    markers = [line for line in output.splitlines() if any(marker in line for marker in INTERNAL_ERROR_MARKERS)]
    return {
        "label": spec.label,
        "command": spec.command,
        "status": status,
        "seconds": seconds,
        "report": report,
        "error_lines": markers,
        "output_tail": output[-3000:],
    }


def print_run(result: dict) -> None:
    report = result["report"]
    findings = report["findings"] if report else []
    counts = Counts()
    counts.add(findings)
    severities = counts.by_severity()
    print(
        f"{result['label']}: exit {result['status']} in {result['seconds']:.1f} s; "
        + ("no report written; " if report is None else "")
        + "findings: "
        + ", ".join(f"{severities[s]} {s}" for s in SEVERITIES)
    )
    for line in counts.lines():
        print(line)
    for finding in findings:
        print(
            f"      {finding['path']}:{finding['line']} {finding['code']} {finding['rule']} "
            f"[{finding['severity']}] (step {finding.get('step')}): {finding['message']}"
        )
    for error in report.get("internal_errors", []) if report else []:
        print(f"      guard internal error: {str(error)[:300]}")
    for line in result["error_lines"]:
        print(f"      output: {line.strip()[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER", help="folders of code to lint")
    parser.add_argument("--scripts", type=Path, help="commands to run under the guard (see the module docstring)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per guarded script")
    parser.add_argument("--json", type=Path, help="also write every result, with the full reports, to this file")
    arguments = parser.parse_args()
    missing = [str(folder) for folder in arguments.folders if not folder.is_dir()]
    if arguments.scripts is not None and not arguments.scripts.is_file():
        missing.append(str(arguments.scripts))
    if missing:
        parser.exit(2, f"real_code.py: not found: {', '.join(missing)}\n")

    results: dict[str, list[dict]] = {"lint": [], "runs": []}
    for folder in arguments.folders:
        result = lint_folder(folder.resolve())
        results["lint"].append(result)
        print_lint(result)
    if arguments.scripts is not None:
        for spec in read_scripts(arguments.scripts):
            if not spec.directory.is_dir():
                parser.exit(2, f"real_code.py: {spec.label}: working folder not found: {spec.directory}\n")
            result = run_script(spec, arguments.timeout)
            results["runs"].append(result)
            print_run(result)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
