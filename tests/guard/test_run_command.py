"""`trainguard run` end to end, driven as a user drives it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.torchrun_jobs import run_job

BUGGY = """\
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(4, 3)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(4):
    loss = nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,)))
    loss.backward()
    optimizer.step()
print("finished")
"""


def trainguard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainguard", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def buggy(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    return script


def test_run_reports_the_finding_with_place_and_writes_the_contract_report(buggy: Path) -> None:
    result = trainguard("run", "--report", "out/report.json", "--", sys.executable, "train.py", cwd=buggy.parent)
    assert result.returncode == 1, result.stderr
    assert "finished" in result.stdout  # the user's output passes through
    assert "train.py:9 TG101 stale-gradients" in result.stderr
    report = json.loads((buggy.parent / "out/report.json").read_text())
    assert report["tool"] == "trainguard" and report["mode"] == "run"
    assert report["summary"] == {"error": 1, "warning": 0, "info": 0}
    (finding,) = report["findings"]
    assert (finding["code"], finding["rule"], finding["path"], finding["line"], finding["step"], finding["rank"]) == (
        "TG101", "stale-gradients", "train.py", 9, 1, None)
    assert finding["evidence"]["count"] == 3 and finding["fix"]


def test_short_form_json_format_and_fail_on_never(buggy: Path) -> None:
    result = trainguard("run", "--format", "json", "--fail-on", "never", "train.py", cwd=buggy.parent)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert [f["code"] for f in report["findings"]] == ["TG101"]


def test_strict_stops_the_run_without_a_traceback(buggy: Path) -> None:
    result = trainguard("run", "--strict", "train.py", cwd=buggy.parent)
    assert result.returncode == 1
    assert "finished" not in result.stdout
    assert "stopped the run (--strict) at train.py:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_ignore_silences_a_rule(buggy: Path) -> None:
    result = trainguard("run", "--ignore", "stale-gradients", "train.py", cwd=buggy.parent)
    assert result.returncode == 0 and "no findings" in result.stderr


def test_the_scripts_own_exit_status_passes_through(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("import torch\nimport sys\nsys.exit(3)\n")
    assert trainguard("run", "s.py", cwd=tmp_path).returncode == 3


def test_the_scripts_own_exception_passes_through_unchanged(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("import torch\nraise RuntimeError('user bug')\n")
    result = trainguard("run", "s.py", cwd=tmp_path)
    assert result.returncode == 1
    traceback = result.stderr[result.stderr.index("Traceback"):]
    assert "RuntimeError: user bug" in traceback
    assert "trainguard" not in traceback.split("RuntimeError")[0]  # no guard frames in the user's traceback


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.py"], "script not found: missing.py"),
        (["run", "--", "no-such-command-xyz"], "command not found: no-such-command-xyz"),
        (["run", "--select", "TG999", "x.py"], "unknown rule 'TG999'"),
        (["run"], "nothing to run"),
        (["run", "--format", "yaml", "x.py"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = trainguard(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_torchrun_guards_every_rank_and_merges_one_report(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent("""\
        import torch, torch.distributed as dist
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel as DDP
        dist.init_process_group("gloo")
        torch.manual_seed(0)
        model = DDP(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            out = model(torch.randn(8, 4))
            loss = nn.functional.cross_entropy(torch.softmax(out, dim=1), torch.randint(0, 3, (8,)))
            loss.backward()
            optimizer.step()
        # no destroy_process_group(): gloo on torch 2.13 aborts at exit in some runs (see tests/torchrun_jobs.py)
    """))
    torchrun = Path(sys.executable).with_name("torchrun")
    result = run_job(lambda: trainguard("run", "--report", "r.json", "--", str(torchrun), "--standalone", "--nproc_per_node=2", "ddp.py", cwd=tmp_path))
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    (finding,) = report["findings"]
    assert (finding["code"], finding["path"], finding["line"], finding["rank"]) == ("TG302", "ddp.py", 11, 0)
    assert finding["evidence"]["ranks"] == [0, 1]
