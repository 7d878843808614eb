"""fit()'s own behaviour: accumulation scaling, fail-fast, the guard's silence on a correct run,
validation mode, outputs, and the errors for unusable checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainguard.demo.digits import make_digits
from trainguard.pipeline import CheckpointError, ConfigError, FitConfig, NonFiniteLossError, fit, load_checkpoint
from trainguard.pipeline.data_order import EpochOrder

QUIET = {"progress": False, "guard": False}


def _digits_setup(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_each_window_is_divided_by_its_own_number_of_micro_batches() -> None:
    # loss = mean(w . x) has the parameter-independent gradient mean(x), so SGD(lr=1) moves w by
    # minus the sum, over steps, of each window's mean micro-batch gradient.
    features = torch.arange(10.0).reshape(5, 2) ** 2
    data = TensorDataset(features, torch.zeros(5))
    model = nn.Linear(2, 1, bias=False)
    start = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)

    fit(model, lambda output, _: output.mean(), optimizer, data,
        config=FitConfig(batch_size=2, accumulation_steps=2, seed=5, **QUIET))

    order = list(EpochOrder(5, seed=5, epoch=0))  # micro-batches of 2, 2, 1 -> windows [2, 2] and [1]
    micro = [features[order[0:2]].mean(0), features[order[2:4]].mean(0), features[order[4:5]].mean(0)]
    expected_step = (micro[0] + micro[1]) / 2 + micro[2] / 1
    assert torch.allclose(start - model.weight.detach(), expected_step.unsqueeze(0))
    # Dividing the last window by accumulation_steps (2) instead would have moved it less.
    assert not torch.allclose(start - model.weight.detach(), ((micro[0] + micro[1]) / 2 + micro[2] / 2).unsqueeze(0))


def test_a_correct_default_run_under_the_guard_has_no_findings(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(640, 1), make_digits(200, 2),
                 config=FitConfig(out_dir=tmp_path, epochs=3, accumulation_steps=3, clip_grad_norm=1.0,
                                  eval_every_steps=5, progress=False))

    assert result.findings == []
    assert result.steps == 3 * 7  # 20 micro-batches an epoch in windows of 3: 7 steps
    assert result.val_loss is not None and result.val_loss < 2.0  # it learned: chance is ln(10) = 2.30
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"] == [] and report["pipeline"]["steps"] == 21 and report["metrics"] == "metrics.jsonl"
    weights = load_file(tmp_path / "final.safetensors")
    assert all(torch.equal(weights[name], value) for name, value in model.state_dict().items())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "eval"] == [4, 6, 9, 13, 14, 19, 20]  # every 5 steps + epoch ends
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"best.pt", "step-000000007.pt", "step-000000014.pt", "step-000000021.pt"}
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_the_guard_still_reports_a_bug_in_the_users_loss(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    result = fit(model, lambda logits, labels: nn.functional.cross_entropy(logits.softmax(dim=1), labels), optimizer,
                 make_digits(128, 1), config=FitConfig(progress=False))
    assert [f.code for f in result.findings] == ["TG302"]


def test_validation_runs_in_eval_mode_without_autograd() -> None:
    seen: list[tuple[bool, bool]] = []
    model, optimizer = _digits_setup()
    model.register_forward_hook(lambda module, args, output: seen.append((module.training, torch.is_grad_enabled())))
    fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(64, 1), make_digits(64, 2),
        config=FitConfig(batch_size=32, eval_batch_size=32, **QUIET))
    assert seen == [(True, True), (True, True), (False, False), (False, False)]
    assert model.training


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == labels).float().mean()


def test_validation_metrics_are_means_weighted_by_samples(tmp_path: Path) -> None:
    # Identity "model" on one-hot rows: sample i is right iff its label is i % 3. Batches of 2, 2, 1
    # are right 2/2, 0/2 and 1/1: 3 of 5 samples (an unweighted mean of batches would say 2/3).
    inputs = torch.eye(3)[[0, 1, 2, 0, 1]]
    data = TensorDataset(inputs, torch.tensor([0, 1, 0, 1, 1]))
    model = nn.Sequential(nn.Identity(), nn.Linear(3, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3))
        model[1].bias.zero_()
    result = fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.0), data, data,
                 config=FitConfig(out_dir=tmp_path, batch_size=5, eval_batch_size=2, **QUIET), metrics={"accuracy": _accuracy})
    assert result.validation["val_accuracy"] == pytest.approx(3 / 5)
    assert result.validation["val_loss"] == pytest.approx(nn.functional.cross_entropy(inputs, data.tensors[1]).item())
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert record["val_accuracy"] == result.validation["val_accuracy"] and record["samples"] == 5


def test_best_pt_follows_the_chosen_metric_and_mode(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(320, 1), make_digits(200, 2), metrics={"accuracy": _accuracy},
                 config=FitConfig(out_dir=tmp_path, epochs=2, eval_every_steps=2, best_metric="val_accuracy", best_mode="max",
                                  progress=False))
    evaluations = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    highest = max(e["val_accuracy"] for e in evaluations)
    first_highest = next(e for e in evaluations if e["val_accuracy"] == highest)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["best"] == {"metric": "val_accuracy", "value": highest} and result.best == highest
    assert best["position"]["step"] == first_highest["step"] + 1
    assert evaluations[0]["val_accuracy"] < highest  # so "min" would have kept another checkpoint


def test_best_metric_must_be_measured(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    with pytest.raises(ConfigError, match=r"best_metric 'val_accuracy' is not measured \(measured: val_loss\)"):
        fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(64, 1), config=FitConfig(out_dir=tmp_path, best_metric="val_accuracy", **QUIET))
    with pytest.raises(ConfigError, match="cannot be named 'loss'"):
        fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(64, 1), config=FitConfig(**QUIET), metrics={"loss": _accuracy})
    assert not any(tmp_path.iterdir())


def test_a_resume_that_changes_best_metric_starts_a_new_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, *_digits_setup(), val=True)
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(64, 1), make_digits(64, 2), metrics={"accuracy": _accuracy},
                 config=FitConfig(out_dir=tmp_path, batch_size=16, epochs=2, resume=True, best_metric="val_accuracy",
                                  best_mode="max", **QUIET))
    assert "best.pt was chosen by val_loss, now by val_accuracy" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["best"] == {"metric": "val_accuracy", "value": result.best}


def test_a_non_finite_loss_stops_before_the_update(tmp_path: Path) -> None:
    features = torch.randn(64, 64)
    features[40] = float("nan")
    model, optimizer = _digits_setup()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    order = list(EpochOrder(64, seed=0, epoch=0))
    bad_step = order.index(40) // 16

    with pytest.raises(NonFiniteLossError, match=f"optimizer step {bad_step}"):
        fit(model, nn.CrossEntropyLoss(), optimizer, TensorDataset(features, torch.zeros(64, dtype=torch.long)),
            config=FitConfig(out_dir=tmp_path, batch_size=16, **QUIET))

    assert all(torch.isfinite(p).all() for p in model.parameters())
    if bad_step == 0:
        assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(f["code"], f["step"]) for f in report["findings"]] == [("TG306", bad_step)]
    assert not (tmp_path / "final.safetensors").exists()


def test_fp16_unscales_before_clipping(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(128, 1),
                 config=FitConfig(out_dir=tmp_path, precision="fp16", clip_grad_norm=0.5, log_every_steps=1, progress=False))
    norms = [json.loads(line)["grad_norm"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # Scaled gradients would show norms of thousands (the scale starts at 65536).
    assert result.findings == [] and all(0 < norm < 100 for norm in norms)
    assert load_checkpoint(tmp_path / "checkpoints" / "step-000000004.pt")["scaler"]["scale"] > 0


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    truncated, foreign, pickled = tmp_path / "truncated.pt", tmp_path / "foreign.pt", tmp_path / "pickled.pt"
    torch.save({"format": "trainguard-checkpoint", "version": 1, "model": {"w": torch.ones(100)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    torch.save({"format": "trainguard-checkpoint", "version": 1, "hook": Path("x")}, pickled)

    with pytest.raises(CheckpointError, match="truncated.pt is not a readable checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="foreign.pt is not a trainguard checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="pickled.pt is not a readable checkpoint"):
        load_checkpoint(pickled)
    older = tmp_path / "older.pt"
    torch.save({"format": "trainguard-checkpoint", "version": 1, "best_val_loss": 0.5}, older)
    with pytest.raises(CheckpointError, match="older.pt has checkpoint version 1; this trainguard reads version 2"):
        load_checkpoint(older)


def _train(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, val: bool = False, **settings: object) -> None:
    fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(64, 1), make_digits(64, 2) if val else None,
        config=FitConfig(out_dir=out, batch_size=16, **QUIET, **settings))


def test_resume_refuses_another_model_or_other_settings(tmp_path: Path) -> None:
    _train(tmp_path, *_digits_setup())
    wider = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    with pytest.raises(CheckpointError, match="does not match this model"):
        _train(tmp_path, wider, torch.optim.SGD(wider.parameters(), lr=0.1), resume=True)
    with pytest.raises(CheckpointError, match=r"other settings \(batch_size=16 \(now 8\)\)"):
        fit(*_digits_setup()[:1], nn.CrossEntropyLoss(), _digits_setup()[1], make_digits(64, 1),
            config=FitConfig(out_dir=tmp_path, batch_size=8, resume=True, **QUIET))
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        _train(tmp_path, *_digits_setup())


def test_resume_skips_an_unreadable_newest_checkpoint_and_fails_when_none_loads(tmp_path: Path) -> None:
    _train(tmp_path, *_digits_setup(), epochs=2)
    newest, older = sorted((tmp_path / "checkpoints").glob("step-*.pt"), reverse=True)
    newest.write_bytes(b"garbage")
    model, optimizer = _digits_setup(seed=1)
    _train(tmp_path, model, optimizer, epochs=2, resume=True)  # continues from `older`: step 4 of 8
    assert load_checkpoint(newest)["position"] == {"epoch": 2, "batch": 0, "step": 8}

    for path in (tmp_path / "checkpoints").glob("step-*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be loaded"):
        _train(tmp_path, *_digits_setup(), epochs=2, resume=True)


def test_fit_takes_a_dataset_not_a_loader() -> None:
    model, optimizer = _digits_setup()
    with pytest.raises(TypeError, match="not a DataLoader"):
        fit(model, nn.CrossEntropyLoss(), optimizer, DataLoader(make_digits(8, 1)), config=FitConfig(**QUIET))


def test_compile_trains_through_dynamo_and_checkpoints_keep_the_models_own_keys(tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(128, 1), make_digits(64, 2),
                 config=FitConfig(out_dir=tmp_path, batch_size=32, compile=True, tensorboard=False, progress=False))

    assert counters["stats"]["unique_graphs"] >= 1  # the steps ran through a compiled graph
    assert result.findings == [] and result.steps == 4
    saved = load_checkpoint(tmp_path / "checkpoints" / "step-000000004.pt")["model"]
    assert saved.keys() == model.state_dict().keys()  # no "_orig_mod." prefixes: loadable without compile
    assert not (tmp_path / "tensorboard").exists()


def test_a_bad_device_or_a_model_elsewhere_is_one_clear_error(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    with pytest.raises(ConfigError, match="device 'gpu' is not a device name"):
        fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(8, 1), config=FitConfig(device="gpu", **QUIET))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda': no CUDA GPU is visible"):
            fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(8, 1), config=FitConfig(device="cuda", **QUIET))
    on_meta = nn.Linear(64, 10, device="meta")
    with pytest.raises(ConfigError, match="the model is on meta but the device is cpu"):
        fit(on_meta, nn.CrossEntropyLoss(), torch.optim.SGD(on_meta.parameters(), lr=0.1), make_digits(8, 1),
            config=FitConfig(out_dir=tmp_path, **QUIET))
    assert not any(tmp_path.iterdir())


def test_under_torchrun_a_bare_cuda_is_the_ranks_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainguard.pipeline.distributed import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert training_device("cuda") == torch.device("cuda", 3)
    assert training_device("cuda:1") == torch.device("cuda", 1)  # an explicit index is kept
    assert training_device("cpu") == torch.device("cpu")


def test_a_run_stopped_by_max_steps_mid_epoch_validates_its_final_weights(tmp_path: Path) -> None:
    model, optimizer = _digits_setup()
    result = fit(model, nn.CrossEntropyLoss(), optimizer, make_digits(320, 1), make_digits(64, 2),
                 config=FitConfig(out_dir=tmp_path, max_steps=7, **QUIET))  # 10 steps an epoch: no epoch end
    evaluations = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in evaluations] == [6] and result.val_loss == evaluations[0]["val_loss"]
