"""`trainguard doctor` as a user runs it: bad TARGETs (exit 2, one line), the two examples, the
report files, --only/--skip/--fail-on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainguard.cli import main

ROOT = Path(__file__).resolve().parents[2]
CORRECT = str(ROOT / "examples" / "doctor_correct.py") + ":setup"
BROKEN = str(ROOT / "examples" / "doctor_broken.py") + ":setup"
FAST = ["--skip", "throughput"]


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    status = main(["doctor", *args, "--format", "json"])
    captured = capsys.readouterr()
    return status, (json.loads(captured.out) if captured.out else {}), captured.err


GOOD = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    def data():
        return TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))

    def parts():
        return dict(model=nn.Linear(4, 2), loss_fn=nn.CrossEntropyLoss(),
                    optimizer=lambda params: torch.optim.SGD(params, lr=0.1), train_data=data())
""")

BAD_TARGETS = {
    "no-function": ("target.py", GOOD, "{path}", "must be module:function or path/to/file.py:function"),
    "no-file": ("target.py", GOOD, "{dir}/missing.py:setup", "no such file"),
    "syntax-error": ("target.py", "def setup(:\n", "{path}:setup", "cannot import"),
    "import-raises": ("target.py", "raise RuntimeError('no data here')\n", "{path}:setup", "RuntimeError: no data here"),
    "missing-function": ("target.py", GOOD, "{path}:nothing", "has no function 'nothing'"),
    "function-raises": ("target.py", GOOD + "\ndef setup():\n    raise ValueError('boom')\n", "{path}:setup", "raised ValueError: boom"),
    "wrong-type": ("target.py", GOOD + "\ndef setup():\n    return [1, 2]\n", "{path}:setup", "returned a list"),
    "missing-key": ("target.py", GOOD + "\ndef setup():\n    p = parts(); del p['optimizer']; return p\n", "{path}:setup", "without 'optimizer'"),
    "unknown-key": ("target.py", GOOD + "\ndef setup():\n    return dict(parts(), val_loader=data())\n", "{path}:setup", "unknown key(s) 'val_loader'"),
    "optimizer-instance": ("target.py", GOOD + "\ndef setup():\n    p = parts(); p['optimizer'] = torch.optim.SGD(p['model'].parameters(), lr=0.1); return p\n",
                           "{path}:setup", "'optimizer' must be a callable"),
    "list-data": ("target.py", GOOD + "\ndef setup():\n    return dict(parts(), train_data=[1, 2])\n", "{path}:setup", "not a torch Dataset or DataLoader"),
    "not-pairs": ("target.py", GOOD + "\ndef setup():\n    return dict(parts(), train_data=TensorDataset(torch.randn(8, 4)))\n", "{path}:setup", "(inputs, targets) pairs"),
    "config-file": ("train.toml", "", "{path}", "does not read `trainguard train` configs yet"),
    "unknown-module": ("target.py", GOOD, "no_such_module_xyz:setup", "no module named 'no_such_module_xyz'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_a_bad_target_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, source, spec, expected = BAD_TARGETS[case]
    path = tmp_path / name
    path.write_text(source)
    status, report, err = _doctor(capsys, spec.format(path=path, dir=tmp_path))
    assert status == 2 and report == {}
    assert err.count("\n") == 1 and err.startswith("trainguard doctor: ") and expected in err


def test_a_bad_target_from_the_shell_shows_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "target.py"
    path.write_text("def setup():\n    return {}['model']\n")
    done = subprocess.run([sys.executable, "-m", "trainguard", "doctor", f"{path}:setup"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"trainguard doctor: {path}:setup raised KeyError: 'model'"


def test_module_function_targets_and_setup_dataclasses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_setup.py").write_text(GOOD + "\nfrom trainguard.doctor import Setup\n\ndef setup():\n    return Setup(**parts())\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, report, _ = _doctor(capsys, "my_setup:setup", "--only", "registration,data-sanity")
    assert status == 0 and [probe["name"] for probe in report["probes"]] == ["registration", "data-sanity"]


@pytest.mark.parametrize("option", ["--report", "--markdown", "--html"])
def test_an_unwritable_output_is_refused_before_probing(option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("")
    status, _, err = _doctor(capsys, CORRECT, option, str(tmp_path / "a_file" / "out"))
    assert status == 2
    assert err == f"trainguard doctor: {option} {tmp_path / 'a_file' / 'out'}: {tmp_path / 'a_file'} is a file, not a folder\n"


@pytest.mark.parametrize(("args", "expected"), [
    (["--only", "registration,bogus"], "unknown probe 'bogus'"),
    (["--skip", "registration,data-sanity,loss-at-init,overfit-batch,gradient-flow,eval-mode,checkpoint,device-parity,throughput,memory"], "leave no probe"),
    (["--budget", "0"], "--budget must be a positive"),
])
def test_bad_options_are_usage_errors(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _doctor(capsys, CORRECT, *args)
    assert status == 2 and expected in err


def test_the_correct_example_passes_every_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, report, err = _doctor(capsys, CORRECT, "--budget", "15", "--report", str(tmp_path / "r.json"))
    assert status == 0 and report["findings"] == []
    verdicts = {probe["name"]: probe["verdict"] for probe in report["probes"]}
    gpu_probes = {"device-parity", "memory"}
    assert all(verdict == "pass" for name, verdict in verdicts.items() if name not in gpu_probes), verdicts
    assert report["device"] != "cpu" or all(verdicts[name] == "skip" for name in gpu_probes)
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert "pass registration" in err  # progress on stderr, a line per probe


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    folder = tmp_path_factory.mktemp("broken")
    status = main(["doctor", BROKEN, *FAST, "--report", str(folder / "r.json"), "--markdown", str(folder / "r.md"),
                   "--html", str(folder / "r.html")])
    return status, json.loads((folder / "r.json").read_text()), folder


def _finding(report: dict, rule: str, probe: str) -> dict:
    (found,) = [f for f in report["findings"] if f["rule"] == rule and f["evidence"]["probe"] == probe and f["evidence"].get("data") != "val"]
    return found


def test_the_broken_example_names_each_planted_defect_with_its_fix(broken: tuple[int, dict, Path]) -> None:
    status, report, _ = broken
    assert status == 1
    source = (ROOT / "examples" / "doctor_broken.py").read_text().splitlines()
    hidden = _finding(report, "unregistered-module", "registration")
    assert "self.blocks = [" in source[hidden["line"] - 1] and "ModuleList" in hidden["fix"]
    softmax = _finding(report, "softmax-before-cross-entropy", "loss-at-init")
    assert "softmax" in source[softmax["line"] - 1] and "logits" in softmax["fix"]
    labels = _finding(report, "data-sanity", "data-sanity")
    assert (labels["evidence"]["label_min"], labels["evidence"]["label_max"], labels["evidence"]["classes"]) == (1, 4, 4)
    assert labels["fix"] == "shift the labels to start at 0 (labels - 1)"
    shuffle = _finding(report, "train-loader-not-shuffled", "data-sanity")
    assert shuffle["code"] == "TG501" and "shuffle=True" in shuffle["fix"]
    verdicts = {probe["name"]: probe["verdict"] for probe in report["probes"]}
    assert verdicts["overfit-batch"] == "skip"  # blocked by the loss raising on label 4, said once by loss-at-init


def test_the_html_page_is_self_contained(broken: tuple[int, dict, Path]) -> None:
    page = (broken[2] / "r.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)  # the charts' script is inline
    assert "@import" not in page and "url(" not in page
    assert "BrokenClassifier.blocks is a plain list" in page


def test_the_html_page_charts_gradient_norms_and_the_overfit_curve(tmp_path: Path) -> None:
    assert main(["doctor", CORRECT, *FAST, "--html", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("<figure class=\"chart\"") == 2
    assert "gradient norm per layer" in page and page.count('class="bar"') == 4  # the example's four layers
    assert "overfit one batch: training loss" in page and "<polyline" in page


def test_the_markdown_report_has_the_verdicts_and_the_fixes(broken: tuple[int, dict, Path]) -> None:
    text = (broken[2] / "r.md").read_text()
    assert text.startswith("# Training-readiness report")
    assert "| registration | FAIL |" in text and "| eval-mode | PASS |" in text
    assert "- fix: shift the labels to start at 0 (labels - 1)" in text


@pytest.mark.parametrize(("fail_on", "status"), [("never", 0), ("error", 1)])
def test_fail_on_sets_the_exit_status(fail_on: str, status: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert _doctor(capsys, BROKEN, "--only", "data-sanity", "--fail-on", fail_on)[0] == status


def test_a_warning_fails_only_with_fail_on_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "target.py"
    path.write_text(GOOD + "\nfrom torch.utils.data import DataLoader\n\ndef setup():\n    return dict(parts(), train_data=DataLoader(data(), batch_size=16))\n")
    assert _doctor(capsys, f"{path}:setup", "--only", "data-sanity")[0] == 0
    assert _doctor(capsys, f"{path}:setup", "--only", "data-sanity", "--fail-on", "warning")[0] == 1


def test_text_output_lists_probes_and_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", BROKEN, "--only", "registration"]) == 1
    out = capsys.readouterr().out
    assert "registration" in out and "fail" in out
    assert "TG301 unregistered-module" in out and "fix: store them in nn.ModuleList" in out


HANGING = GOOD + textwrap.dedent("""
    import time

    class HangsUnderNoGrad(nn.Linear):
        def forward(self, x):
            if not torch.is_grad_enabled():
                time.sleep(6)  # far beyond the 2 s budget
            return super().forward(x)

    def setup():
        return dict(parts(), model=HangsUnderNoGrad(4, 2))
""")


def test_the_budget_stops_a_forward_that_hangs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch._dynamo  # noqa: F401  (the first optimizer imports it: seconds that are not the hang's)

    path = tmp_path / "target.py"
    path.write_text(HANGING)
    started = time.perf_counter()
    status, report, _ = _doctor(capsys, f"{path}:setup", "--only", "registration,data-sanity,eval-mode,checkpoint", "--budget", "2",
                                "--html", str(tmp_path / "r.html"))
    assert time.perf_counter() - started < 4.5
    verdicts = [(probe["name"], probe["verdict"]) for probe in report["probes"]]
    (hung,) = [index for index, probe in enumerate(report["probes"]) if probe["summary"].startswith("timed out after")]
    name = report["probes"][hung]["name"]  # the first probe with a forward pass under no_grad
    assert status == 0 and hung >= 1 and all(verdict == "pass" for _, verdict in verdicts[:hung]), verdicts  # finished: kept
    assert verdicts[hung] == (name, "warn") and all(verdict == "skip" for _, verdict in verdicts[hung + 1:]), verdicts
    assert all(f"while {name} was running" in probe["summary"] for probe in report["probes"][hung + 1:])
    (finding,) = report["findings"]
    assert "did not finish within the time budget of 2 s" in finding["message"] and "--budget" in finding["fix"]
    assert "timed out after" in (tmp_path / "r.html").read_text()
