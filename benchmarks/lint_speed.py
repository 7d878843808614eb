"""Milliseconds per file for `trainguard lint`, against `ast.parse` alone measured in the same run.

Sets: the lint fixtures and the runtime guard's fixtures (realistic training scripts) and the
Python standard library. Each
set is read into memory first, so both columns time the same work minus the disk: decoding and
parsing (the baseline), then everything `trainguard lint` does per file (decoding, parsing,
suppression comments, the analysis and every rule). Times are this process's CPU time, the
best of `--repeat` runs.

`--torch` measures whole processes instead, on real torch code: the installed PyTorch's own
`torch/nn` and `torch/distributed` sources (about 500 files), `trainguard lint` on both folders
against a Python process that reads and `ast.parse`s the same files. Each column is the CPU time
(user + system) of the child process, start-up and imports included, best of `--repeat` runs; the
ratio is the figure the lint speed target is stated in (at most 3x).

    python benchmarks/lint_speed.py [--repeat 3] [--torch]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
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


PARSE_ONLY = """
import ast, sys, warnings
warnings.simplefilter("ignore")
for path in open(sys.argv[1], encoding="utf-8").read().splitlines():
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        ast.parse(data)
    except (SyntaxError, ValueError):
        pass
"""


def child_cpu_seconds(command: list[str]) -> float:
    """CPU time (user + system) of one child process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def torch_sources() -> list[Path]:
    """The installed torch's nn and distributed folders (found without importing torch)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("torch is not installed: nothing to measure")
    root = Path(next(iter(spec.submodule_search_locations)))
    return [root / "nn", root / "distributed"]


def torch_ratio(repeat: int) -> None:
    folders = torch_sources()
    files = [path for folder in folders for path in discover([folder], [], folder)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        listing.write("\n".join(str(path) for path in files))
    try:
        parse = min(child_cpu_seconds([sys.executable, "-c", PARSE_ONLY, listing.name]) for _ in range(repeat))
        lint_command = [sys.executable, "-m", "trainguard", "lint", "--format", "json", "--fail-on", "never", *map(str, folders)]
        lint = min(child_cpu_seconds(lint_command) for _ in range(repeat))
    finally:
        os.unlink(listing.name)
    print(f"{'torch/nn + torch/distributed, whole processes':46} {'files':>6} {'ast.parse s':>12} {'lint s':>8} {'ratio':>6}")
    print(f"{'':46} {len(files):6d} {parse:12.2f} {lint:8.2f} {lint / parse:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--torch", action="store_true", help="whole-process ratio on the installed torch's nn and distributed sources")
    args = parser.parse_args()
    if args.torch:
        torch_ratio(args.repeat)
        return
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
