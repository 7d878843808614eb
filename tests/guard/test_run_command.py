"""`trainguard run` end to end, driven as a user drives it."""

from __future__ import annotations

import json
import os
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
    report = json.loads(result.stdout)  # the report alone: the script's own print went to stderr
    assert [f["code"] for f in report["findings"]] == ["TG101"]
    assert "finished" in result.stderr and report["guarded_processes"] == 1


@pytest.mark.parametrize("option", ["--report", "--html", "--metrics"])
def test_an_unwritable_output_is_refused_before_the_command_runs(tmp_path: Path, option: str) -> None:
    (tmp_path / "a_file").write_text("")
    (tmp_path / "s.py").write_text("open('ran', 'w').close()\n")
    result = trainguard("run", option, "a_file/out.json", "s.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"trainguard run: {option} a_file/out.json: {tmp_path / 'a_file'} is a file, not a folder\n"
    assert not (tmp_path / "ran").exists()


def test_a_report_that_cannot_be_written_at_the_end_keeps_summary_and_status(tmp_path: Path) -> None:
    # The script itself takes the report's path (a folder now): the write fails after the run.
    (tmp_path / "s.py").write_text("import os, sys, torch\nos.makedirs('out/r.json')\nsys.exit(3)\n")
    result = trainguard("run", "--report", "out/r.json", "s.py", cwd=tmp_path)
    assert result.returncode == 3
    assert "trainguard run: could not write the report to out/r.json (Is a directory)" in result.stderr
    assert "no findings in" in result.stderr and "Traceback" not in result.stderr


def test_a_command_that_runs_no_python_is_not_called_clean(tmp_path: Path) -> None:
    result = trainguard("run", "--", "true", cwd=tmp_path)
    assert result.returncode == 0
    assert "no Python process was guarded" in result.stderr and "no findings" not in result.stderr
    (tmp_path / "s.py").write_text("print('no torch here')\n")
    result = trainguard("run", "s.py", cwd=tmp_path)
    assert "never imported torch" in result.stderr and "no findings" not in result.stderr


def test_a_python_without_trainguard_is_refused_and_not_called_clean(tmp_path: Path) -> None:
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")  # a Python that cannot import trainguard
    (tmp_path / "s.py").write_text("print('ran')\n")
    # The launcher imports trainguard from this checkout; the child's PYTHONPATH holds only the bootstrap.
    root = str(Path(__file__).resolve().parents[2])
    launcher = f"import sys; sys.path.insert(0, {root!r}); from trainguard.cli import main; sys.exit(main())"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", launcher, "run", "--", str(tmp_path / "venv/bin/python"), "s.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert "trainguard is not installed for" in result.stderr and "pip install -e" in result.stderr
    assert "no Python process was guarded" in result.stderr and "no findings" not in result.stderr
    assert "ran" not in result.stdout


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
    # Live, the job's finding is printed once (not once per rank); the summary lists it once more.
    assert result.stderr.count("ddp.py:11 TG302 softmax-before-cross-entropy [error]") == 1, result.stderr
