"""`trainguard lint` driven as a user drives it: formats, exit status, options, configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainguard.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
BUGGY = (FIXTURES / "fire" / "tg101_no_zero_grad.py").read_text()
WARNS = (FIXTURES / "fire" / "tg110_scheduler_first.py").read_text()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small repository: a buggy script, a warning-only script, a clean one, and junk to skip."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "sched.py").write_text(WARNS)
    (tmp_path / "clean.py").write_text((FIXTURES / "silent" / "trainer_class.py").read_text())
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "dep.py").write_text(BUGGY)
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "gen.py").write_text(BUGGY)
    (tmp_path / ".gitignore").write_text("generated/\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["lint", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_text_output_points_at_file_line_column_and_fails_on_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = lint(".", capsys=capsys)
    assert status == 1
    assert "train.py:16:9 TG101 stale-gradients" in out
    assert "sched.py:11:5 TG110 scheduler-before-optimizer" in out
    assert "gen.py" not in out and "dep.py" not in out  # .gitignore and the environment are skipped
    assert "1 error, 1 warning in 3 files" in out


def test_json_report_follows_the_contract(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = lint(".", "--format", "json", "--report", "out/report.json", capsys=capsys)
    report = json.loads(out)
    assert report == json.loads((project / "out" / "report.json").read_text())
    assert (report["tool"], report["mode"], report["summary"]) == ("trainguard", "lint", {"error": 1, "warning": 1, "info": 0})
    first = report["findings"][0]
    assert {key: first[key] for key in ("rule", "code", "severity", "path", "line", "column", "step", "rank")} == {
        "rule": "stale-gradients", "code": "TG101", "severity": "error", "path": "train.py", "line": 16, "column": 9, "step": None, "rank": None,
    }
    assert first["message"] and first["fix"] and isinstance(first["evidence"], dict)
    assert (report["files"], report["errors"]) == (3, [])


def test_fail_on_levels(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lint("sched.py", capsys=capsys)[0] == 0
    assert lint("sched.py", "--fail-on", "warning", capsys=capsys)[0] == 1
    assert lint("train.py", "--fail-on", "never", capsys=capsys)[0] == 0


def test_select_ignore_and_exclude(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = lint(".", "--select", "TG1", "--ignore", "stale-gradients", "--format", "json", capsys=capsys)
    assert [f["code"] for f in json.loads(out)["findings"]] == ["TG110"]
    _, out, _ = lint(".", "--exclude", "sched.py", "--exclude", "train*", "--format", "json", capsys=capsys)
    assert json.loads(out)["findings"] == []


@pytest.mark.parametrize("args, message", [
    (["missing.py"], "missing.py does not exist"),
    (["train.py", "--select", "TG999"], "unknown rule 'TG999'"),
    (["train.py", "--config", "nope.toml"], "the configuration file nope.toml does not exist"),
])
def test_usage_errors_exit_2_with_one_sentence(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    status, _, err = lint(*args, capsys=capsys)
    assert status == 2
    assert message in err and "Traceback" not in err


def test_unparsable_file_is_reported_once_and_the_run_goes_on(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "py2.py").write_text("print 'old'\n")
    status, out, err = lint(".", "--format", "json", capsys=capsys)
    report = json.loads(out)
    assert status == 1
    assert err.count("py2.py") == 1 and "cannot lint py2.py:1: syntax error" in err
    assert [e["path"] for e in report["errors"]] == ["py2.py"]
    assert {f["code"] for f in report["findings"]} == {"TG101", "TG110"}


def test_sarif_output_is_sarif_2_1_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = lint("train.py", "--format", "sarif", capsys=capsys)
    sarif = json.loads(out)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "trainguard"
    (result,) = run["results"]
    assert (result["ruleId"], result["level"]) == ("TG101", "error")
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "TG101"
    location = result["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "train.py", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 16, "startColumn": 9}}
    # Every rule's helpUri names a page that this repository holds (it named docs/rules/, which does not exist).
    root = Path(__file__).resolve().parents[2]
    for rule in run["tool"]["driver"]["rules"]:
        repository, _, page = rule["helpUri"].partition("/blob/main/")
        assert repository == run["tool"]["driver"]["informationUri"] and (root / page).is_file(), rule["helpUri"]


def test_github_annotations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = lint("train.py", "sched.py", "--format", "github", capsys=capsys)
    lines = out.splitlines()
    assert lines[0].startswith("::error file=train.py,line=16,col=9,title=TG101 stale-gradients::optimizer.step() uses")
    assert lines[1].startswith("::warning file=sched.py,line=11,col=5,title=TG110 scheduler-before-optimizer::")


def test_pyproject_configuration(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.trainguard]\nfail-on = "warning"\n\n'
        '[tool.trainguard.lint]\nignore = ["TG2"]\nexclude = ["clean.py"]\n'
        '[tool.trainguard.lint.per-file-ignores]\n"train.py" = ["stale-gradients"]\n'
    )
    status, out, _ = lint(".", "--format", "json", capsys=capsys)
    report = json.loads(out)
    assert [f["code"] for f in report["findings"]] == ["TG110"]
    assert report["files"] == 2
    assert status == 1  # fail-on = "warning" from the configuration


def test_command_line_select_replaces_the_configured_one(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text('[tool.trainguard.lint]\nselect = ["TG110"]\n')
    _, out, _ = lint(".", "--format", "json", capsys=capsys)
    assert [f["code"] for f in json.loads(out)["findings"]] == ["TG110"]
    _, out, _ = lint(".", "--format", "json", "--select", "TG101", capsys=capsys)
    assert [f["code"] for f in json.loads(out)["findings"]] == ["TG101"]


@pytest.mark.parametrize("text, message", [
    ("[tool.trainguard.lint]\nfail-on = 3\n", "fail-on must be"),
    ("[tool.trainguard.lint]\nselect = [\"TG9\"]\n", "unknown rule 'TG9'"),
    ("[tool.trainguard.lint]\nspeed = 1\n", "unknown key 'speed'"),
    ("[tool.trainguard\n", "is not valid TOML"),
])
def test_broken_configuration_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    (project / "pyproject.toml").write_text(text)
    status, _, err = lint(".", capsys=capsys)
    assert status == 2 and message in err


def test_python_dash_m_entry_point(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-m", "trainguard", "lint", "train.py", "--format", "github"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("::error file=train.py,line=16")


def test_an_unwritable_report_is_refused_before_linting(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = lint("train.py", "--report", "clean.py/report.json", capsys=capsys)
    assert status == 2 and out == ""
    assert err == f"trainguard lint: --report clean.py/report.json: {project / 'clean.py'} is a file, not a folder\n"
    status, out, err = lint("train.py", "--report", ".git", capsys=capsys)
    assert status == 2 and err == "trainguard lint: --report .git: is a folder; give a file name\n"
