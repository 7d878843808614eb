"""Milliseconds per file for `trainguard lint`, against `ast.parse` alone measured in the same run.

Sets: the lint fixtures and the runtime guard's fixtures (realistic training scripts) and the
Python standard library. Each
set is read into memory first, so both columns time the same work minus the disk: decoding and
parsing (the baseline), then everything `trainguard lint` does per file (decoding, parsing,
suppression comments, the analysis and every rule). Times are this process's CPU time, the
best of `--repeat` runs.

    python benchmarks/lint_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import ast
import sysconfig
import time
import warnings
from pathlib import Path

from trainguard.lint.config import LintConfig
from trainguard.lint.discovery import discover
from trainguard.lint.engine import lint_source

ROOT = Path(__file__).resolve().parents[1]


def load(folder: Path) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in discover([folder], [], folder)]


def parse_only(files: list[tuple[str, bytes]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, data in files:
            try:
                ast.parse(data)
            except (SyntaxError, ValueError):
                pass


def lint_all(files: list[tuple[str, bytes]]) -> None:
    budget = LintConfig().analysis_budget
    for name, data in files:
        lint_source(data, name, budget=budget)


def best_ms_per_file(function, files: list[tuple[str, bytes]], repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()  # CPU time: other jobs on a shared machine do not count
        function(files)
        best = min(best, time.process_time() - start)
    return 1000 * best / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sets = {
        "training scripts (tests/lint/fixtures)": load(ROOT / "tests" / "lint" / "fixtures"),
        "training scripts (tests/runtime/fixtures)": load(ROOT / "tests" / "runtime" / "fixtures"),
        "standard library": load(Path(sysconfig.get_paths()["stdlib"])),
    }
    sets = {label: files for label, files in sets.items() if files}
    print(f"{'set':42} {'files':>6} {'ast.parse ms/file':>18} {'lint ms/file':>13} {'ratio':>6}")
    for label, files in sets.items():
        parse = best_ms_per_file(parse_only, files, args.repeat)
        lint = best_ms_per_file(lint_all, files, args.repeat)
        print(f"{label:42} {len(files):6d} {parse:18.2f} {lint:13.2f} {lint / parse:6.1f}x")


if __name__ == "__main__":
    main()
