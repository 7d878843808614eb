"""The distributed rules under real torchrun (2 gloo ranks on CPU): TG502, TG801, TG803, TG804 fire on
their planted bug, a correct DDP script stays silent, and a dying rank does not hang the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.torchrun_jobs import run_job

pytestmark = pytest.mark.slow  # every test here runs a torchrun job of several processes

SCRIPT = Path(__file__).with_name("ddp_train.py")
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def guarded_ddp(tmp_path: Path, *flags: str) -> tuple[int, list[dict], str]:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "trainguard", "run", "--report", str(report), "--", TORCHRUN, "--standalone", "--nproc_per_node=2", str(SCRIPT), *flags]
    result = run_job(lambda: subprocess.run(command, capture_output=True, text=True, timeout=180))
    findings = json.loads(report.read_text())["findings"] if report.exists() else []
    return result.returncode, findings, result.stderr


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1) if text in line)


# SyncBatchNorm refuses CPU modules, so the correct BatchNorm case here is frozen BatchNorm.
# Without a DistributedSampler but shuffled with a seed per rank, the ranks read different batches.
@pytest.mark.parametrize(
    "flags", [(), ("--batchnorm", "--frozen-bn"), ("--rank-seeded-shuffle",)], ids=["plain", "frozen-batchnorm", "rank-seeded-shuffle"]
)
def test_correct_ddp_with_set_epoch_and_ranks_in_sync_is_silent(tmp_path: Path, flags: tuple[str, ...]) -> None:
    status, findings, stderr = guarded_ddp(tmp_path, *flags)
    assert status == 0, stderr
    assert findings == []


@pytest.mark.parametrize(
    ("flag", "code", "status", "line", "evidence"),
    [
        ("--no-set-epoch", "TG502", 0, "for x, y in loader:", {"ranks": [0, 1], "sampler_epoch": 0}),
        ("--nudge", "TG801", 1, "optimizer.step()", {"differing_ranks": [1], "first_parameter": "module.0.weight", "checked_at_step": 0}),
        ("--batchnorm", "TG803", 0, "loss = F.cross_entropy(model(x), y)", {"ranks": [0, 1], "batchnorm_layers": ["module.1"]}),
        ("--no-sampler", "TG804", 0, "for x, y in loader:", {"world_size": 2, "identical_steps": [0, 1], "batch_size": 8}),
    ],
)
def test_planted_distributed_bug_is_reported_once_for_the_job(tmp_path: Path, flag: str, code: str, status: int, line: str, evidence: dict) -> None:
    exit_status, findings, stderr = guarded_ddp(tmp_path, flag)
    assert exit_status == status, stderr  # TG801 is an error; TG502 and TG803 are warnings
    (finding,) = findings
    assert (finding["code"], finding["path"].endswith("ddp_train.py"), finding["line"], finding["rank"]) == (code, True, line_of(line), 0)
    assert evidence.items() <= finding["evidence"].items()


def test_a_dying_rank_does_not_hang_the_report_and_its_status_passes_through(tmp_path: Path) -> None:
    status, findings, stderr = guarded_ddp(tmp_path, "--crash-rank1")
    assert status != 0
    assert "rank 1 fails" in stderr
    assert (tmp_path / "report.json").exists() and findings == []
