"""Exact resume: an uninterrupted run and the same run SIGKILLed at a random micro-batch and resumed
end with bitwise-equal weights, optimizer, scheduler, scaler and RNG states; and a checkpoint write
killed midway leaves the previous checkpoint loadable."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainguard.pipeline.checkpoints import VERSION, CheckpointStore, load_checkpoint

HERE = Path(__file__).parent
SCRIPT = HERE / "resumable_run.py"
# resumable_run.py: 19 micro-batches an epoch, 3 epochs; its first checkpoint comes after step 2.
MICRO_BATCHES = 57


def _run(out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *options], capture_output=True, text=True, timeout=300)


_uninterrupted: dict[tuple[str, ...], Path] = {}


def _uninterrupted_run(options: tuple[str, ...], folders: pytest.TempPathFactory) -> Path:
    """The reference run for `options`, made once per test process (two cases share one)."""
    if options not in _uninterrupted:
        out = folders.mktemp("whole")
        completed = _run(out, *options)
        assert completed.returncode == 0, completed.stderr
        _uninterrupted[options] = out
    return _uninterrupted[options]


def assert_identical(left: Any, right: Any, where: str = "checkpoint") -> None:
    """Recursive bitwise equality of checkpoint contents (tensors: same dtype, shape and bits)."""
    assert type(left) is type(right), f"{where}: {type(left).__name__} != {type(right).__name__}"
    if isinstance(left, torch.Tensor):
        assert left.dtype == right.dtype and left.shape == right.shape, where
        assert torch.equal(left, right), f"{where} differs"
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), f"{where}: keys {sorted(left)} != {sorted(right)}"
        for key in left:
            assert_identical(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


def _step_losses(out: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["type"] == "step"]


def _tensorboard_losses(out: Path) -> list[tuple[int, float]]:
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars("train/loss")]


@pytest.mark.slow
@pytest.mark.parametrize(("options", "stop"), [
    pytest.param(("--workers", "0", "--accumulation", "3"), "KILL", id="accumulation-dropout"),
    pytest.param(("--workers", "2", "--accumulation", "3"), "KILL", id="2-workers"),
    pytest.param(("--workers", "0", "--accumulation", "2", "--precision", "bf16"), "KILL", id="bf16-autocast"),
    pytest.param(("--workers", "0", "--accumulation", "3"), "TERM", id="sigterm-checkpoints-and-exits"),
    pytest.param(("--workers", "0", "--accumulation", "2", "--compile"), "KILL", id="torch-compile"),
])
def test_killed_and_resumed_run_is_bitwise_identical(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                     options: tuple[str, ...], stop: str) -> None:
    kill_at = random.randrange(8, MICRO_BATCHES - 2)
    whole, interrupted = _uninterrupted_run(options, tmp_path_factory), tmp_path / "interrupted"

    killed = _run(interrupted, *options, "--kill-at", str(kill_at), "--signal", stop)
    if stop == "KILL":
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    else:  # stopped at the end of the step holding micro-batch kill_at, with a checkpoint there
        assert killed.returncode == 128 + signal.SIGTERM, killed.stderr
        stopped_at = int(killed.stdout.split()[-1])
        epoch, within = divmod(kill_at - 1, 19)  # 19 micro-batches an epoch: 7 windows (6 of 3, then 1)
        assert stopped_at == epoch * 7 + within // 3 + 1
        assert CheckpointStore(interrupted / "checkpoints", 3).step_paths()[-1].name == f"step-{stopped_at:09d}.pt"
    assert not (interrupted / "final.safetensors").exists()
    resumed = _run(interrupted, *options, "--resume")
    assert resumed.returncode == 0, resumed.stderr

    context = f"killed at micro-batch {kill_at}"
    expected, actual = load_file(whole / "final.safetensors"), load_file(interrupted / "final.safetensors")
    assert_identical(expected, actual, f"final weights ({context})")
    final = CheckpointStore(whole / "checkpoints", 3).step_paths()[-1]
    assert final.name == CheckpointStore(interrupted / "checkpoints", 3).step_paths()[-1].name
    # Model, optimizer (incl. LR in param_groups), scheduler, RNG states, position, best loss: all.
    assert_identical(load_checkpoint(final), load_checkpoint(interrupted / "checkpoints" / final.name), context)
    assert_identical(load_checkpoint(whole / "checkpoints" / "best.pt"), load_checkpoint(interrupted / "checkpoints" / "best.pt"), context)
    # The killed run's records past its last checkpoint were dropped and logged again; TensorBoard
    # hides them (purge_step) and lost none from before the checkpoint (flushed there).
    assert _step_losses(interrupted) == _step_losses(whole)
    as_float32 = [(step, torch.tensor(loss, dtype=torch.float32).item()) for step, loss in _step_losses(whole)]
    assert _tensorboard_losses(interrupted) == _tensorboard_losses(whole) == as_float32  # TensorBoard keeps float32


_KILL_MID_WRITE = """
import os, signal, sys, io, torch
from trainguard.pipeline import checkpoints

def half_then_die(state, path):
    buffer = io.BytesIO()
    real_save(state, buffer)
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

real_save = torch.save
checkpoints.torch.save = half_then_die
checkpoints.write_checkpoint(sys.argv[1], {"format": "trainguard-checkpoint", "version": checkpoints.VERSION, "model": {"w": torch.ones(1000)}})
"""


def test_checkpoint_write_killed_midway_leaves_the_previous_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_last=3)
    previous = {"format": "trainguard-checkpoint", "version": VERSION, "model": {"w": torch.zeros(1000)}}
    path = store.save(previous, step=4)

    killed = subprocess.run([sys.executable, "-c", _KILL_MID_WRITE, str(path)], capture_output=True, timeout=60)

    assert killed.returncode == -signal.SIGKILL
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert leftovers, "the killed writer should have left its half-written temporary file"
    assert_identical(load_checkpoint(path), previous)
    CheckpointStore(tmp_path, keep_last=3)  # a new run sweeps the leftovers
    assert list(tmp_path.iterdir()) == [path]


def test_old_checkpoints_are_removed_only_after_the_new_one_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(tmp_path, keep_last=2)
    state = {"format": "trainguard-checkpoint", "version": VERSION}
    for step in (1, 2):
        store.save(state, step)

    def fail(state: Any, path: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        store.save(state, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000001.pt", "step-000000002.pt"]
