"""`trainguard demo`: train a small digit classifier twice under the guard, once with the
200-epoch post-mortem's missing-zero_grad bug and once correct, and say what the guard showed."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from rich.panel import Panel

from trainguard.console import make_console, print_findings
from trainguard.runtime import launcher
from trainguard.runtime.launcher import RunResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="show the guard end to end on a small built-in task (offline, < 1 min)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (default 5)")
    parser.set_defaults(handler=run_demo)


def _train(script: Path, bug: str, epochs: int) -> tuple[RunResult, float]:
    result_file = script.parent / f"{bug}.json"
    argv = [sys.executable, str(script), "--bug", bug, "--epochs", str(epochs), "--result", str(result_file)]
    outcome = launcher.run(launcher.Launch(argv, torchrun=False))
    accuracy = json.loads(result_file.read_text())["accuracy"] if result_file.exists() else float("nan")
    return outcome, accuracy


def run_demo(args: argparse.Namespace) -> int:
    from trainguard.cli import UsageError

    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    console = make_console(sys.stdout)
    console.print(Panel.fit(
        "A digit classifier (8x8 images, 10 classes) trained twice\n"
        "under `trainguard run`: first with the 200-epoch bug\n"
        "(optimizer.zero_grad() missing), then correct.",
        title="trainguard demo",
    ))
    with tempfile.TemporaryDirectory(prefix="trainguard-demo-") as folder:
        # Run a copy, as a user's own script: findings then point at its lines.
        script = Path(folder) / "train_digits.py"
        shutil.copyfile(Path(__file__).with_name("train_digits.py"), script)
        console.rule("1. the loop without optimizer.zero_grad()")
        buggy, buggy_accuracy = _train(script, "missing-zero-grad", args.epochs)
        console.rule("2. the same loop, correct")
        correct, correct_accuracy = _train(script, "none", args.epochs)
        source = script.read_text().splitlines()
    if buggy.returncode or correct.returncode:
        console.print("[red]a demo run failed; see its output above[/]")
        return 1

    console.rule("what the guard showed")
    stale = [f for f in buggy.findings if f.code == "TG101"]
    if stale:
        first = stale[0]
        console.print(f"With the bug, the guard reported {first.code} {first.rule} at optimizer step {first.step} "
                      f"(the second step: the first that used uncleared gradients), at line {first.line}:")
        if first.line:
            console.print(f"    {source[first.line - 1].strip()}", style="bold")
        console.print(f"  {first.message}\n  fix: {first.fix}")
    else:
        console.print("[red]With the bug, the guard reported nothing: this is a trainguard bug, please report it.[/]")
    others = [f for f in correct.findings]
    if others:
        console.print("[red]The correct run produced findings (it should be silent):[/]")
        print_findings(console, others, compact=True)
    else:
        console.print("The correct run produced no findings.")
    console.print(f"Validation accuracy after {args.epochs} epochs: {buggy_accuracy:.1%} with the bug, "
                  f"{correct_accuracy:.1%} without it. Nothing crashed in either run: only the guard told them apart.")
    return 0 if stale and not others else 1
