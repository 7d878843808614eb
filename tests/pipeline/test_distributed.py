"""Exact resume of a 2-rank DDP run (gloo, CPU) under torchrun, SIGKILLed at a random micro-batch."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.pipeline.test_resume import SCRIPT, assert_identical
from tests.torchrun_jobs import run_job
from trainguard.pipeline.checkpoints import CheckpointStore, load_checkpoint

# 300 samples over 2 ranks, batch 16: 10 micro-batches per rank an epoch, 3 epochs.
MICRO_BATCHES_PER_RANK = 30


def _torchrun(out: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(SCRIPT), str(out), "--accumulation", "3", *options]
    return run_job(lambda: subprocess.run(command, capture_output=True, text=True, timeout=300))


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_bitwise_identically(tmp_path: Path) -> None:
    kill_at = random.randrange(6, MICRO_BATCHES_PER_RANK - 2)
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    completed = _torchrun(whole)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((whole / "report.json").read_text())["findings"] == []  # the guard on both ranks: silent

    assert _torchrun(interrupted, "--kill-at", str(kill_at)).returncode != 0
    assert not (interrupted / "final.safetensors").exists()
    resumed = _torchrun(interrupted, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    context = f"DDP, killed at micro-batch {kill_at}"
    assert_identical(load_file(whole / "final.safetensors"), load_file(interrupted / "final.safetensors"), context)
    final = CheckpointStore(whole / "checkpoints", 3).step_paths()[-1]
    expected, actual = load_checkpoint(final), load_checkpoint(interrupted / "checkpoints" / final.name)
    assert len(expected["rng"]) == 2 and expected["fingerprint"]["world_size"] == 2
    assert_identical(expected, actual, context)
