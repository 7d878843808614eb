"""Numeric-health rules (TG107/108/109/306/401/402/503): each must fire on its failure and stay
silent on healthy runs. The seed's scenarios: a learning rate far too high is reported at the
first non-finite step (or stopped there with strict); a validation loss rising five evaluations in
a row is reported at the fifth."""

from __future__ import annotations

import json
import math
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import trainguard
from trainguard.demo.digits import make_digits

NUMERIC = "TG107,TG108,TG109,TG306,TG401,TG402,TG503"


def digits_run(lr: float, epochs: int, seed: int = 0, *, watch: dict | None = None, poison: bool = False) -> tuple[list, list[float]]:
    """Train the demo's classifier; returns (findings, per-step training losses)."""
    torch.manual_seed(seed)
    data = make_digits(640, seed=seed + 1)
    if poison:
        data.tensors[0][100, 3] = float("nan")
    train = DataLoader(data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(make_digits(256, seed=seed + 100), batch_size=128)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses: list[float] = []
    handle = trainguard.watch(echo=False, **watch) if watch is not None else None
    try:
        for _ in range(epochs):
            model.train()
            for x, y in train:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                losses.append(loss.item())
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, y in val:
                    F.cross_entropy(model(x), y)
    finally:
        findings = trainguard.unwatch() if handle is not None else []
    return findings, losses


def codes(findings: list) -> set[str]:
    return {f.code for f in findings}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_runs_raise_no_numeric_alarm(seed: int) -> None:
    findings, losses = digits_run(lr=0.1, epochs=8, seed=seed, watch={"select": NUMERIC})
    assert losses[-1] < losses[0] / 3  # it really is a healthy run
    assert findings == [], [(f.code, f.message) for f in findings]


def test_learning_rate_too_high_is_reported_at_the_first_non_finite_step() -> None:
    _, plain_losses = digits_run(lr=1000.0, epochs=2)
    first_bad = next(i for i, value in enumerate(plain_losses) if not math.isfinite(value))
    findings, _ = digits_run(lr=1000.0, epochs=2, watch={"select": NUMERIC})
    (nonfinite,) = [f for f in findings if f.code == "TG306"]
    assert nonfinite.step == first_bad
    assert nonfinite.line is not None and nonfinite.path.endswith("test_numeric_rules.py")
    assert nonfinite.evidence["first_nonfinite_gradient"] is not None
    (exploding,) = [f for f in findings if f.code == "TG108"]
    assert exploding.step < first_bad and "blowing up" in exploding.message  # the norm alarm went off before the NaN


def test_strict_stops_before_the_non_finite_update() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    with trainguard.watch(echo=False, strict=True, select="TG306"):
        with pytest.raises(trainguard.GuardStop) as stopped:
            for step in range(3):
                optimizer.zero_grad()
                target = torch.full((8, 1), float("inf") if step == 2 else 1.0)
                F.mse_loss(model(x), target).backward()
                optimizer.step()
    assert stopped.value.finding.code == "TG306" and stopped.value.finding.step == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN update never ran


def test_non_finite_inputs_are_named_as_the_cause() -> None:
    findings, _ = digits_run(lr=0.1, epochs=1, watch={"select": NUMERIC}, poison=True)
    assert {"TG503", "TG306"} <= codes(findings)
    (inputs,) = [f for f in findings if f.code == "TG503"]
    assert inputs.evidence["nonfinite_values"] == 1


def _validation_sequence(values: list[float], reduction: str = "mean", **watch) -> list:
    """Evaluations whose per-sample MSE is exactly each value (two batches of 4), with a training step between them."""
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with trainguard.watch(echo=False, select="TG401", **watch) as handle:
        for value in values:
            optimizer.zero_grad()
            F.mse_loss(model(torch.ones(4, 2)), torch.zeros(4, 1)).backward()
            optimizer.step()
            with torch.no_grad():
                for _ in range(2):
                    F.mse_loss(torch.zeros(4), torch.full((4,), math.sqrt(value)), reduction=reduction)
    return handle.findings  # the last evaluation is closed when the guard is removed


def test_validation_loss_rising_five_evaluations_is_reported_at_the_fifth() -> None:
    findings = _validation_sequence([1.0, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4])
    (divergence,) = findings
    assert divergence.code == "TG401"
    assert divergence.evidence["evaluation"] == 7  # the fifth evaluation above the best (0.8)
    assert divergence.evidence["best"] == pytest.approx(0.8)


def test_validation_loss_with_a_new_best_in_time_stays_silent() -> None:
    assert _validation_sequence([1.0, 0.8, 0.9, 1.0, 1.1, 1.2, 0.7, 0.75, 0.8, 0.9, 0.95]) == []


def test_a_flat_noisy_plateau_above_a_lucky_best_stays_silent() -> None:
    # Every value is above the best by more than the margin, but the loss does not rise.
    assert _validation_sequence([1.0, 0.8, 0.86, 0.83, 0.87, 0.84, 0.86, 0.83, 0.85, 0.87, 0.84, 0.86, 0.83]) == []
    # Rising, but within 2 % of the best: noise, not divergence.
    assert _validation_sequence([1.0, 0.8, 0.801, 0.803, 0.806, 0.81, 0.812, 0.814]) == []


def test_a_sum_reduced_validation_loss_is_quoted_per_sample() -> None:
    # reduction="sum": each call returns 4x the value; the guard quotes the per-sample value, as
    # a script dividing its total by len(dataset) prints it, and says so.
    (divergence,) = _validation_sequence([1.0, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3], reduction="sum")
    assert divergence.evidence["best"] == pytest.approx(0.8) and divergence.evidence["reduction"] == "sum"
    assert "(now 1.3; per sample: the loss calls' sums over 8 samples divided by 8)" in divergence.message


def test_patience_is_configurable() -> None:
    (finding,) = _validation_sequence([1.0, 1.1, 1.2], thresholds={"val_patience": 2})
    assert finding.evidence["evaluation"] == 3


def test_gradient_spike_far_above_the_running_median() -> None:
    # Gradient norms are read on sampled steps (every step in the first 20, then adaptively and
    # at every 50th): a spike that lasts is caught at the first sampled step inside it.
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)
    with trainguard.watch(echo=False, select="TG108", thresholds={"exploding_norm": 1e12}) as handle:
        for step in range(60):
            optimizer.zero_grad()
            scale = 1000.0 if step >= 25 else 1.0
            F.mse_loss(model(torch.randn(16, 8) * scale), torch.randn(16, 1)).backward()
            optimizer.step()
    (spike,) = handle.findings
    assert 25 <= spike.step <= 50 and "running median" in spike.message


def _spiky_run(spike_steps: set[int], clip: bool = False, **watch) -> list:
    """A linear regression whose inputs are 1000x larger at `spike_steps` (norm and loss spike together)."""
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)
    with trainguard.watch(echo=False, select="TG108", **watch) as handle:
        for step in range(40):
            optimizer.zero_grad()
            scale = 1000.0 if step in spike_steps else 1.0
            F.mse_loss(model(torch.randn(16, 8) * scale), torch.randn(16, 1)).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    return handle.findings


def test_a_single_early_transient_is_not_judged() -> None:
    # Step 3 is inside the first 20 measurements, which only build the history.
    assert _spiky_run({3}) == []


def test_a_confirmed_spike_after_the_first_steps_is_reported_at_its_step() -> None:
    # Steps 0-19 are all measured (later ones are sampled): a warm-up of 10 puts the spike at a known step.
    (spike,) = _spiky_run({15}, thresholds={"norm_warmup": 10})
    assert spike.step == 15 and spike.evidence["spike_step"] == 15 and "running median" in spike.message


def test_a_spike_the_clip_bounded_is_not_reported() -> None:
    # clip_grad_norm_ caps the update; the pre-clip norm is what is judged, and a spike is the clip's job.
    assert _spiky_run({15}, clip=True, thresholds={"norm_warmup": 10}) == []


def test_the_absolute_threshold_is_opt_in() -> None:
    # A summed loss has healthy norms far above 10: no alarm by default, the seed's alarm when asked.
    assert _spiky_run(set()) == []
    (absolute,) = _spiky_run(set(), thresholds={"exploding_norm": 0.5})
    assert absolute.step == 0 and "alert threshold 0.5" in absolute.message


def test_the_seed_missing_zero_grad_run_is_caught_by_the_norm_alarm() -> None:
    # The seed's failure: the demo's loop without optimizer.zero_grad(). Gradients accumulate, the
    # norm and the loss grow together; reported at the first sampled step where that is visible.
    argv = sys.argv
    sys.argv = ["train_digits.py", "--bug", "missing-zero-grad", "--epochs", "3"]
    try:
        with trainguard.watch(echo=False, select="TG108") as handle:
            runpy.run_module("trainguard.demo.train_digits", run_name="__main__")
    finally:
        sys.argv = argv
    (exploding,) = handle.findings
    # Steps 0-19 are all measured and the norm has not grown 10x yet; the next sampled step comes
    # within a few dozen (adaptive sampling), long before the loss overflows (past step 200).
    assert 20 <= exploding.step <= 96, exploding.message
    assert "the loss rose" in exploding.message


def test_nan_gradient_with_a_finite_loss() -> None:
    weight = nn.Parameter(torch.tensor([1.0, -1.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with trainguard.watch(echo=False, select=NUMERIC) as handle:
        output = torch.sqrt(weight * 0.0).sum()  # 0, but d/dw = 0 * 1/(2 sqrt(0)) = NaN
        F.l1_loss(output, torch.tensor(0.0)).backward()
        optimizer.step()
    (nan_gradient,) = handle.findings
    assert nan_gradient.code == "TG107" and nan_gradient.step == 0


def test_vanishing_gradients_in_a_deep_saturated_network() -> None:
    torch.manual_seed(0)
    layers = []
    for _ in range(8):
        linear = nn.Linear(16, 16)
        nn.init.normal_(linear.weight, std=0.01)
        layers += [linear, nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with trainguard.watch(echo=False, select="TG109") as handle:
        for _ in range(6):
            optimizer.zero_grad()
            F.mse_loss(model(torch.randn(32, 16)), torch.randn(32, 1)).backward()
            optimizer.step()
    (vanishing,) = handle.findings
    assert vanishing.step == 4 and "0.weight" in vanishing.evidence["layers"]


def test_loss_not_decreasing_with_a_learning_rate_of_zero() -> None:
    findings, _ = digits_run(lr=0.0, epochs=4, watch={"select": "TG402", "thresholds": {"loss_window": 30}})
    (stalled,) = findings
    assert stalled.code == "TG402" and stalled.step == 30


def test_unknown_threshold_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown threshold 'explode'"):
        trainguard.watch(thresholds={"explode": 1})


def test_a_hand_written_loss_is_the_training_loss(tmp_path) -> None:
    # No torch loss function: the value backward() was called on is what the metrics show.
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    printed = []
    with trainguard.watch(echo=False, metrics=str(tmp_path / "m.jsonl")):
        for _ in range(4):
            optimizer.zero_grad()
            loss = ((model(torch.ones(2, 3)) - 1.0) ** 2).mean()
            printed.append(loss.item())
            loss.backward()
            optimizer.step()
    steps = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in steps if r["type"] == "step"] == pytest.approx(printed)


def test_steady_state_losses_read_late_are_each_steps_loss(tmp_path) -> None:
    # Steps after the first 20 keep their losses on the device and read them at the next window
    # (or at the end), in one read: float32 and float64 losses mixed, every value exact.
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    printed = []
    with trainguard.watch(echo=False, metrics=str(tmp_path / "m.jsonl")):
        for step in range(70):
            optimizer.zero_grad()
            out = model(x)
            loss = F.mse_loss(out.double(), y.double()) if step % 3 == 0 else F.mse_loss(out, y)
            printed.append(loss.item())
            loss.backward()
            optimizer.step()
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    steps = sorted((r["step"], r["loss"]) for r in records if r["type"] == "step")
    assert [step for step, _ in steps] == list(range(70))
    assert [loss for _, loss in steps] == printed


class _Mixed(nn.Module):
    """Dense real gradients, and optionally a sparse embedding gradient (with a repeated index:
    uncoalesced) and a complex one: the layouts the one-kernel norm path must hand elsewhere."""

    def __init__(self, sparse: bool, complex_weight: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4, sparse=sparse)
        self.head = nn.Linear(4, 2)
        self.phase = nn.Parameter(torch.randn(3, dtype=torch.complex64)) if complex_weight else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.head(self.embed(ids)).sum()
        return out if self.phase is None else out + (self.phase.abs() ** 2).sum()


@pytest.mark.parametrize("sparse,complex_weight", [(False, False), (True, False), (False, True)])
def test_measured_gradient_norms_are_each_gradients_norm(tmp_path, sparse: bool, complex_weight: bool) -> None:
    torch.manual_seed(0)
    model = _Mixed(sparse, complex_weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = []
    with trainguard.watch(echo=False, metrics=str(tmp_path / "m.jsonl")):
        for _ in range(3):
            optimizer.zero_grad()
            loss = F.mse_loss(model(torch.tensor([1, 1, 3])), torch.tensor(0.5))
            loss.backward()
            grads = {n: p.grad.to_dense() if p.grad.is_sparse else p.grad for n, p in model.named_parameters()}
            expected.append({n: torch.linalg.vector_norm(g).item() for n, g in grads.items()})
            optimizer.step()
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    measured = [r["layer_grad_norms"] for r in records if r["type"] == "step"]
    assert len(measured) == 3
    for got, want in zip(measured, expected):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64])
def test_all_finite_finds_each_kind_of_non_finite_value(dtype: torch.dtype) -> None:
    from trainguard.runtime.measurements import all_finite

    largest = torch.finfo(dtype).max
    assert all_finite(torch.tensor([largest, -largest, 0.0], dtype=dtype))  # far apart, yet finite
    assert all_finite(torch.empty(0, dtype=dtype))
    for bad in (float("nan"), float("inf"), float("-inf")):
        values = torch.zeros(3, 4, dtype=dtype)
        values[1, 2] = bad
        assert not all_finite(values.t())  # a strided view too


def _converged_then_continued(restore_optimizer: bool) -> list:
    """Train a regression to its floor, checkpoint it, then continue from the checkpoint under
    the guard for TG402's window: the loss is flat, as it is late in any schedule."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1)
    model = nn.Linear(4, 1)
    # Plain SGD: its restored state is empty, so both runs below take the very same steps and
    # differ only in the resume the guard is told of.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(400):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    with trainguard.watch(echo=False, select="TG402") as handle:
        resumed = nn.Linear(4, 1)
        resumed.load_state_dict(checkpoint["model"])
        optimizer = torch.optim.SGD(resumed.parameters(), lr=0.1)
        if restore_optimizer:
            optimizer.load_state_dict(checkpoint["optimizer"])
        for _ in range(120):
            optimizer.zero_grad()
            F.mse_loss(resumed(x), y).backward()
            optimizer.step()
    return handle.findings


def test_a_resumed_run_at_its_loss_floor_is_not_loss_not_decreasing() -> None:
    assert _converged_then_continued(restore_optimizer=True) == []


def test_the_same_flat_loss_without_a_resume_is_loss_not_decreasing() -> None:
    # Its twin: weights loaded but no optimizer state (a fine-tune), the very same flat curve.
    (finding,) = _converged_then_continued(restore_optimizer=False)
    assert finding.code == "TG402"


def _spike_at_a_window(lr: float) -> list:
    """A regression whose backward is scaled 1000x at step 50 (a window: its norm is measured) while
    its loss-function value is not: a gradient spike without a loss jump at that step. Whether the
    loss then jumps (the huge update) is known only from the steady-state losses read later."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with trainguard.watch(echo=False, select="TG108") as handle:
        for step in range(80):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            (loss * 1000 if step == 50 else loss).backward()
            optimizer.step()
    return handle.findings


def test_a_spike_at_a_window_is_confirmed_by_the_steady_state_losses_after_it() -> None:
    (finding,) = _spike_at_a_window(lr=0.05)
    assert finding.code == "TG108" and finding.evidence["spike_step"] == 50 and finding.step > 50


def test_a_spike_at_a_window_that_the_loss_never_follows_stays_silent() -> None:
    assert _spike_at_a_window(lr=0.0) == []
