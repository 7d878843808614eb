"""What `trainguard train` leaves on disk: the same bytes for the same run, files that follow the
umask, and no temporary files once a run is over (even after a killed one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainguard.cli import main
from trainguard.pipeline.atomic import TEMP_PREFIX, TEMP_SUFFIX, atomic_path, write_text_atomic


def _train(out: Path, umask: int) -> None:
    # A process each: safetensors' metadata order changed between processes, never within one.
    result = subprocess.run([sys.executable, "-m", "trainguard", "train", "--out", str(out), "--max-steps", "3"],
                            capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr


def test_two_identical_runs_write_byte_identical_weights_with_the_umask_mode(tmp_path: Path) -> None:
    _train(tmp_path / "a", 0o022)
    _train(tmp_path / "b", 0o027)
    assert (tmp_path / "a/final.safetensors").read_bytes() == (tmp_path / "b/final.safetensors").read_bytes()
    for name in ("final.safetensors", "report.json", "metrics.jsonl"):
        assert (tmp_path / "a" / name).stat().st_mode & 0o777 == 0o644, name
        assert (tmp_path / "b" / name).stat().st_mode & 0o777 == 0o640, name
    for checkpoint in (tmp_path / "b/checkpoints").iterdir():
        assert checkpoint.stat().st_mode & 0o777 == 0o640, checkpoint.name


def test_a_failed_atomic_write_leaves_no_temporary_and_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed by the test")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_new_run_removes_the_temporaries_a_killed_run_left_in_its_folder(tmp_path: Path) -> None:
    stale = tmp_path / f"{TEMP_PREFIX}final.safetensors.x1y2{TEMP_SUFFIX}"
    stale.write_bytes(b"half-written")
    assert main(["train", "--out", str(tmp_path), "--max-steps", "1"]) == 0
    assert not stale.exists()
    assert not [path for path in tmp_path.rglob("*") if path.name.endswith(TEMP_SUFFIX)]


def test_sorting_the_safetensors_metadata_keeps_the_tensors(tmp_path: Path) -> None:
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from trainguard.pipeline.outputs import sort_safetensors_metadata

    tensors = {"b": torch.arange(5.0), "a": torch.ones(2, 3, dtype=torch.float16)}
    metadata = {key: f"value of {key}" for key in ("step", "format", "zeta", "alpha", "mid", "ü")}
    save_file(tensors, tmp_path / "w.safetensors", metadata=metadata)
    sort_safetensors_metadata(tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert list(header["__metadata__"]) == sorted(metadata)
    assert all(torch.equal(load_file(tmp_path / "w.safetensors")[name], tensor) for name, tensor in tensors.items())
    with safe_open(tmp_path / "w.safetensors", "pt") as handle:
        assert handle.metadata() == metadata
