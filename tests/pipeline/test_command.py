"""`trainguard train` as a user runs it: the embedded task, TOML configs, CSV tables, factories,
resume, and one clear sentence (exit 2, nothing written) for every configuration mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainguard.cli import main


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_the_embedded_task_runs_offline_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.run([sys.executable, "-m", "trainguard", "train", "--out", str(out), "--max-steps", "30"],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "30 optimizer steps" in first.stderr and "no findings" in first.stderr
    assert {p.name for p in out.iterdir()} == {"checkpoints", "metrics.jsonl", "tensorboard", "final.safetensors", "report.json"}
    assert _report(out)["pipeline"]["steps"] == 30

    assert main(["train", "--out", str(out), "--max-steps", "40", "--resume"]) == 0
    assert _report(out)["pipeline"]["steps"] == 40
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] >= 30


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("toml", "message"), [
    ("[train]\nepoch = 3\n", "unknown key train.epoch (expected one of: epochs, "),
    ("[train]\nepochs = \"three\"\n", "train.epochs must be an integer (got 'three')"),
    ("[train]\nprecision = \"fp8\"\n", "train.precision must be 'fp32' or 'bf16' or 'fp16' (got 'fp8')"),
    ("[train]\nbatch_size = 0\n", "[train] batch_size must be at least 1 (got 0)"),
    ("[optimiser]\nlr = 0.1\n", "unknown section [optimiser]"),
    ("[task]\nkind = \"csv\"\ntrain = \"t.csv\"\ntarget = \"y\"\n", "task.features is required when task.kind = 'csv'"),
    ("[task]\nkind = \"csv\"\ntrain = \"missing.csv\"\nfeatures = [\"a\"]\ntarget = \"y\"\n", "missing.csv does not exist"),
    ("[task]\nkind = \"csv\"\ntrain = \"table.csv\"\nfeatures = [\"a\", \"c\"]\ntarget = \"y\"\n", "table.csv has no column 'c' (its columns: a, b, y)"),
    ("[task]\nkind = \"factory\"\nfactory = \"no_such_module_xyz:build\"\n", "task.factory: no module named 'no_such_module_xyz'"),
    ("[task]\nkind = \"factory\"\nfactory = \"broken.py:build\"\n", "task.factory: cannot import broken.py: SyntaxError"),
    ("[task]\nkind = \"factory\"\nfactory = \"raising.py:build\"\n", "task.factory: raising.py:build raised ValueError: no data here"),
    ("[task]\nkind = \"factory\"\nfactory = \"build\"\n", "task.factory: the factory 'build' must be module:function"),
    ("[train\n", "is not valid TOML"),
    ("[train]\ndevice = \"gpu\"\n", "device 'gpu' is not a device name"),
    ("[guard]\nignore = [\"TG999\"]\n", "[guard] unknown rule 'TG999'"),
    ("[guard]\nthresholds = { patience = 2 }\n", "[guard] unknown threshold 'patience'"),
    # Every numeric key names its allowed range (these raised from torch or numpy, exit 1, before).
    ("[optimizer]\nlr = -0.1\n", "optimizer.lr must be above 0 (got -0.1)"),
    ("[optimizer]\nlr = nan\n", "optimizer.lr must be above 0 (got nan)"),
    ("[optimizer]\nmomentum = -0.9\n", "optimizer.momentum must be at least 0 and below 1 (got -0.9)"),
    ("[optimizer]\nweight_decay = -1\n", "optimizer.weight_decay must be at least 0 (got -1.0)"),
    ("[model]\nhidden = [64, -5]\n", "each of model.hidden must be at least 1 (got -5)"),
    ("[model]\ndropout = 1.5\n", "model.dropout must be at least 0 and below 1 (got 1.5)"),
    ("[task]\nsamples = 0\n", "task.samples must be at least 1 (got 0)"),
    ("[task]\nval_samples = -3\n", "task.val_samples must be at least 1 (got -3)"),
    ("[task]\ndata_seed = -1\n", "task.data_seed must be at least 0 (got -1)"),
    ("[train]\nseed = -1\n", "[train] seed must be at least 0 (got -1)"),
    ("[train]\nclip_grad_norm = inf\n", "[train] clip_grad_norm must be above 0 (got inf)"),
    ("[train]\nnum_workers = -1\n", "[train] num_workers must be at least 0 (got -1)"),
    ("[guard]\nthresholds = { exploding_norm = -5 }\n", "[guard] threshold exploding_norm must be a finite number above 0"),
])
def test_a_bad_config_is_one_sentence_exit_2_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  toml: str, message: str) -> None:
    (tmp_path / "table.csv").write_text("a,b,y\n1,2,x\n3,4,z\n")
    (tmp_path / "broken.py").write_text("def build(:\n")
    (tmp_path / "raising.py").write_text("def build():\n    raise ValueError('no data here')\n")
    out = tmp_path / "out"
    assert main(["train", "--config", str(_config(tmp_path, toml)), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.startswith("trainguard train: ") and error.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(("out", "message"), [
    ("a_file", "--out {out}: is a file, not a folder"),
    ("a_file/run", "is a file, not a folder"),
])
def test_an_unusable_out_folder_is_one_sentence_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       out: str, message: str) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    assert main(["train", "--out", str(tmp_path / out), "--max-steps", "1"]) == 2
    error = capsys.readouterr().err
    assert message.format(out=tmp_path / out) in error and error.startswith("trainguard train: ") and error.count("\n") == 1


def test_a_fresh_run_into_a_used_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path), "--max-steps", "2"]) == 0
    assert main(["train", "--out", str(tmp_path), "--max-steps", "2"]) == 2
    assert "already holds checkpoints: resume (--resume)" in capsys.readouterr().err


def _write_table(path: Path, header: list[str], rows: list[list[object]]) -> None:
    if path.suffix == ".csv":
        path.write_text("\n".join([",".join(header)] + [",".join(map(str, row)) for row in rows]) + "\n")
    else:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.table({name: [row[i] for row in rows] for i, name in enumerate(header)}), path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_a_table(tmp_path: Path, kind: str, problem: str) -> None:
    header = ["height", "weight", "label", "score"]
    rows: list[list[object]] = [[i % 7, (i * 3) % 11, "ab"[i % 2], i % 5 * 0.5] for i in range(60)]
    _write_table(tmp_path / f"train.{kind}", header, rows)
    _write_table(tmp_path / f"val.{kind}", header, rows[:20])
    target = "label" if problem == "classification" else "score"
    config = _config(tmp_path, f'[task]\nkind = "{kind}"\ntrain = "train.{kind}"\nval = "val.{kind}"\nfeatures = ["height", "weight"]\n'
                               f'target = "{target}"\nproblem = "{problem}"\n[train]\nepochs = 2\nbatch_size = 8\nclip_grad_norm = 1.0\n'
                               '[optimizer]\nname = "adamw"\nlr = 0.01\nschedule = "cosine"\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    report = _report(tmp_path / "out")
    assert report["findings"] == [] and report["pipeline"]["steps"] == 16 and report["pipeline"]["val_loss"] is not None


_PARQUET_TASK = '[task]\nkind = "parquet"\ntrain = "t.parquet"\nfeatures = ["a", "b"]\ntarget = "y"\n'


@pytest.mark.parametrize(("columns", "message"), [
    ({"a": [1.0, 2.0], "y": ["x", "z"]}, "t.parquet has no column 'b' (its columns: a, y)"),
    ({"a": [1.0, None], "b": [1.0, 2.0], "y": ["x", "z"]}, "t.parquet row 2: column 'a' holds None, not a number"),
    ({"a": [1.0, 2.0], "b": ["3", "four"], "y": ["x", "z"]}, "t.parquet row 2: column 'b' holds 'four', not a number"),
    ({"a": [1.0, 2.0], "b": [1.0, 2.0], "y": ["x", None]}, "t.parquet row 2: column 'y' is empty (every row needs a target)"),
    (None, "t.parquet cannot be read"),
])
def test_a_bad_parquet_table_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             columns: dict[str, list[object]] | None, message: str) -> None:
    import pyarrow
    import pyarrow.parquet

    if columns is None:
        (tmp_path / "t.parquet").write_text("a,b,y\n1,2,x\n")  # a CSV under a Parquet name
    else:
        pyarrow.parquet.write_table(pyarrow.table(columns), tmp_path / "t.parquet")
    assert main(["train", "--config", str(_config(tmp_path, _PARQUET_TASK)), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    assert main(["train", "--config", str(_config(tmp_path, _PARQUET_TASK)), "--out", str(tmp_path / "out")]) == 2
    assert "needs pyarrow (pip install pyarrow" in capsys.readouterr().err


_FACTORY = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

def build():
    data = TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    return {"model": nn.Linear(3, 1), "loss_fn": nn.MSELoss(), "train_data": data, "val_data": data,
            "optimizer": lambda params: torch.optim.SGD(params, lr=0.05),
            "metrics": {"mae": lambda outputs, targets: (outputs - targets).abs().mean()}}

def build_with_nan():
    parts = build()
    features, targets = parts["train_data"].tensors
    features[7, 1] = float("nan")
    return parts

def build_with_softmax():
    parts = build()
    parts["train_data"] = TensorDataset(torch.randn(40, 3), torch.randint(0, 2, (40,)))
    parts["val_data"], parts["metrics"] = None, {}
    parts["model"] = nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=1))
    parts["loss_fn"] = nn.CrossEntropyLoss()
    return parts

def build_with_loader():
    parts = build()
    parts["train_data"] = DataLoader(parts["train_data"])
    return parts
"""


def test_user_code_through_a_factory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mytask.py").write_text(_FACTORY)
    good = _config(tmp_path, '[task]\nkind = "factory"\nfactory = "mytask.py:build"\n[train]\nbatch_size = 10\n')
    assert main(["train", "--config", str(good), "--out", str(tmp_path / "good")]) == 0
    pipeline = _report(tmp_path / "good")["pipeline"]
    assert pipeline["steps"] == 4 and set(pipeline["validation"]) == {"val_loss", "val_mae"} and pipeline["best"] == pipeline["val_loss"]

    nan = _config(tmp_path, '[task]\nkind = "factory"\nfactory = "mytask.py:build_with_nan"\n')
    assert main(["train", "--config", str(nan), "--out", str(tmp_path / "nan")]) == 1
    assert "the training loss is nan at optimizer step 0" in capsys.readouterr().err
    assert [f["code"] for f in _report(tmp_path / "nan")["findings"]] == ["TG306"]

    loader = _config(tmp_path, '[task]\nkind = "factory"\nfactory = "mytask.py:build_with_loader"\n')
    assert main(["train", "--config", str(loader), "--out", str(tmp_path / "loader")]) == 2
    assert "must return train_data as a Dataset, not a DataLoader" in capsys.readouterr().err
    assert not (tmp_path / "loader").exists()


def test_the_guard_section_chooses_the_rules(tmp_path: Path) -> None:
    (tmp_path / "mytask.py").write_text(_FACTORY)
    task = '[task]\nkind = "factory"\nfactory = "mytask.py:build_with_softmax"\n'
    assert main(["train", "--config", str(_config(tmp_path, task)), "--out", str(tmp_path / "all")]) == 1
    assert [f["code"] for f in _report(tmp_path / "all")["findings"]] == ["TG302"]
    ignoring = _config(tmp_path, task + '[guard]\nignore = ["softmax-before-cross-entropy"]\n')
    assert main(["train", "--config", str(ignoring), "--out", str(tmp_path / "ignoring")]) == 0
    assert _report(tmp_path / "ignoring")["findings"] == []


def test_findings_of_the_pipelines_own_loop_point_at_no_place(tmp_path: Path) -> None:
    # The loop is trainguard's fit(), reached through the `trainguard` console script: neither is the
    # user's code, so a finding about the loop has path and line null (it pointed at bin/trainguard:6).
    script = Path(sys.executable).with_name("trainguard")  # installed by `make test` (pip install -e .)
    config = _config(tmp_path, "[guard]\nthresholds = { exploding_norm = 1e-6 }\n")  # fires at step 0
    result = subprocess.run([str(script), "train", "--config", str(config), "--out", str(tmp_path / "out"), "--max-steps", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (finding,) = _report(tmp_path / "out")["findings"]
    assert (finding["code"], finding["path"], finding["line"]) == ("TG108", None, None)
