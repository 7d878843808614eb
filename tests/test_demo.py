"""`trainguard demo` as a user runs it: offline, both runs, the bug caught, the correct run silent."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_catches_the_missing_zero_grad_and_stays_silent_on_the_correct_run(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "trainguard", "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "reported TG101 stale-gradients at optimizer step 1" in out
    assert "optimizer.step()" in out and "fix: call optimizer.zero_grad()" in out
    assert "The correct run produced no findings." in out
    with_bug, without = out.split("Validation accuracy after 5 epochs: ")[1].split(" with the bug, ")
    assert float(with_bug.rstrip("%")) < 50 < float(without.split("%")[0])
