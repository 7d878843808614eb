"""Each model-side probe on its own: a set-up that must make it fire, and correct (often tricky)
set-ups that must leave it silent."""

from __future__ import annotations

import datetime
import math

import pytest
import torch
from torch import nn
from torch.nn import functional

from tests.doctor.setups import CLASSES, FEATURES, MLP, make_setup, probe, rules
from trainguard.doctor import Verdict, run_probes, select_probes
from trainguard.doctor.compare import differ
from trainguard.doctor.places import place_of
from trainguard.doctor.setup import LoadedTarget

# --- registration ---------------------------------------------------------------------------------

class HiddenInList(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(FEATURES, 16)
        self.blocks = [nn.Linear(16, 16), nn.ReLU()]
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class HiddenInDict(MLP):
    def __init__(self) -> None:
        super().__init__()
        self.extra = {"scale": nn.Parameter(torch.ones(CLASSES))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.extra["scale"]


class AliasedList(MLP):
    """A plain list of modules that are registered anyway: nothing is hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.in_order = [self.body, self.head]
        self.extras = nn.ModuleList([nn.Identity()])


def test_registration_names_a_layer_in_a_plain_list_with_its_line() -> None:
    result = probe("registration", make_setup(model=HiddenInList()))
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert (finding.rule, finding.code) == ("unregistered-module", "TG301")
    assert finding.evidence["hidden_parameters"] == 16 * 16 + 16
    assert finding.line == place_of(HiddenInList, r"self\.blocks =")[1]
    assert "nn.ModuleList" in finding.fix


def test_registration_finds_a_parameter_in_a_dict() -> None:
    result = probe("registration", make_setup(model=HiddenInDict()))
    assert rules(result) == ["unregistered-module"]
    assert result.findings[0].evidence["hidden_parameters"] == CLASSES


def test_registration_is_silent_on_aliases_of_registered_modules() -> None:
    result = probe("registration", make_setup(model=AliasedList()))
    assert result.verdict is Verdict.PASS and result.findings == []


def test_registration_names_parameters_left_out_of_the_optimizer() -> None:
    result = probe("registration", make_setup(optimizer=lambda params: torch.optim.SGD(list(params)[:2], lr=0.1)))
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert finding.code == "TG105"
    assert finding.evidence["missing"] == ["head.weight", "head.bias"]


def test_registration_accepts_frozen_parameters_kept_out_of_the_optimizer() -> None:
    model = MLP()
    model.body.requires_grad_(False)
    result = probe("registration", make_setup(
        model=model, optimizer=lambda params: torch.optim.SGD([p for p in params if p.requires_grad], lr=0.1)))
    assert result.verdict is Verdict.PASS
    assert result.evidence["frozen"] == FEATURES * 32 + 32


def test_registration_fails_a_model_with_nothing_to_train() -> None:
    model = MLP().requires_grad_(False)
    result = probe("registration", make_setup(model=model, optimizer=lambda params: torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)))
    assert rules(result) == ["registration"]


# --- loss at initialisation -----------------------------------------------------------------------

class Probabilities(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.softmax(super().forward(x), dim=1)


class LogProbabilities(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.log_softmax(super().forward(x), dim=1)


class Overconfident(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 100


class BinaryHead(MLP):
    def __init__(self, sigmoid: bool) -> None:
        super().__init__()
        self.head = nn.Linear(32, 1)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x).squeeze(1)
        return torch.sigmoid(logits) if self.sigmoid else logits


def _binary_setup(sigmoid: bool):  # type: ignore[no-untyped-def]
    from tests.doctor.setups import digits, loader

    points, labels = digits().tensors
    data = torch.utils.data.TensorDataset(points, (labels == 0).float())
    return make_setup(model=BinaryHead(sigmoid), loss_fn=nn.BCEWithLogitsLoss(), train_data=loader(data), val_data=None)


def test_loss_at_init_names_softmax_before_cross_entropy() -> None:
    result = probe("loss-at-init", make_setup(model=Probabilities()))
    assert rules(result) == ["softmax-before-cross-entropy"]
    assert result.findings[0].line == place_of(Probabilities, "softmax")[1]


def test_loss_at_init_accepts_log_softmax_before_cross_entropy() -> None:
    # log_softmax is idempotent: CrossEntropyLoss computes the same loss either way.
    result = probe("loss-at-init", make_setup(model=LogProbabilities()))
    assert result.verdict is Verdict.PASS


def test_loss_at_init_passes_near_ln_classes() -> None:
    result = probe("loss-at-init", make_setup())
    assert result.verdict is Verdict.PASS
    assert result.evidence["expected"] == pytest.approx(math.log(CLASSES), abs=1e-4)
    assert 0.75 <= result.evidence["ratio"] <= 1.5


def test_loss_at_init_warns_about_overconfident_initial_outputs() -> None:
    result = probe("loss-at-init", make_setup(model=Overconfident()))
    assert result.verdict is Verdict.WARN
    assert rules(result) == ["loss-at-init"] and result.evidence["ratio"] > 1.5


def test_loss_at_init_names_sigmoid_before_bce_with_logits_and_accepts_logits() -> None:
    assert rules(probe("loss-at-init", _binary_setup(sigmoid=True))) == ["sigmoid-before-bce-with-logits"]
    clean = probe("loss-at-init", _binary_setup(sigmoid=False))
    assert clean.verdict is Verdict.PASS and clean.evidence["expected"] == pytest.approx(0.6931, abs=1e-4)


def test_loss_at_init_has_no_expectation_for_regression() -> None:
    from tests.doctor.setups import digits, loader

    points, labels = digits().tensors
    data = torch.utils.data.TensorDataset(points, labels.float().unsqueeze(1))
    model = nn.Sequential(nn.Linear(FEATURES, 1))
    result = probe("loss-at-init", make_setup(model=model, loss_fn=nn.MSELoss(), train_data=loader(data), val_data=None))
    assert result.verdict is Verdict.PASS and "no expected value" in result.summary


def test_loss_at_init_reports_a_loss_that_raises_and_the_others_skip() -> None:
    from tests.doctor.setups import digits, loader

    points, labels = digits().tensors
    shifted = make_setup(train_data=loader(torch.utils.data.TensorDataset(points, labels + 1)), val_data=None)
    result = probe("loss-at-init", shifted)
    assert result.verdict is Verdict.FAIL and "out of bounds" in result.findings[0].message
    blocked = probe("overfit-batch", shifted)  # alone, the blocked probe reports the failure itself
    assert blocked.verdict is Verdict.FAIL and "loss_fn raised IndexError" in blocked.findings[0].message


# --- overfit one batch ----------------------------------------------------------------------------

def test_overfit_passes_when_the_loss_falls_tenfold() -> None:
    result = probe("overfit-batch", make_setup())
    assert result.verdict is Verdict.PASS
    assert result.evidence["last_loss"] <= 0.1 * result.evidence["first_loss"]
    assert result.plot is not None and len(result.plot.points) == result.evidence["steps"]


def test_overfit_fails_when_nothing_learns() -> None:
    result = probe("overfit-batch", make_setup(optimizer=lambda params: torch.optim.SGD(params, lr=0.0)))
    assert result.verdict is Verdict.FAIL
    assert rules(result) == ["loss-not-decreasing"] and result.evidence["steps"] == 200


def test_overfit_warns_when_learning_is_too_slow() -> None:
    result = probe("overfit-batch", make_setup(optimizer=lambda params: torch.optim.SGD(params, lr=0.003)))
    assert result.verdict is Verdict.WARN
    assert rules(result) == ["overfit-batch"]


def test_overfit_reports_a_loss_that_becomes_nan() -> None:
    result = probe("overfit-batch", make_setup(optimizer=lambda params: torch.optim.SGD(params, lr=1e6)))
    assert rules(result) == ["non-finite-loss"]


# --- gradient flow --------------------------------------------------------------------------------

class DeadLayer(MLP):
    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.body[0].bias.fill_(-1e3)  # every ReLU unit is off: no gradient reaches body.0


class UnusedLayer(MLP):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(4, 4)


class InfiniteGradient(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.body(x)
        return self.head(hidden + torch.sqrt(torch.relu(hidden) * 0))  # d sqrt(u)/du at 0 is inf


def test_gradient_flow_passes_with_a_table_of_layers() -> None:
    result = probe("gradient-flow", make_setup())
    assert result.verdict is Verdict.PASS
    assert result.table is not None and [row[0] for row in result.table.rows] == ["body.0", "head"]
    assert all(row[2] > 0 for row in result.table.rows)


def test_gradient_flow_names_a_dead_layer() -> None:
    result = probe("gradient-flow", make_setup(model=DeadLayer()))
    assert rules(result) == ["vanishing-gradients"]
    assert result.findings[0].evidence["layers"] == ["body.0"]


def test_gradient_flow_names_a_layer_off_the_loss_path() -> None:
    result = probe("gradient-flow", make_setup(model=UnusedLayer()))
    assert rules(result) == ["params-without-grad"]
    assert result.findings[0].evidence["layers"] == ["spare"]


def test_gradient_flow_fails_on_non_finite_gradients() -> None:
    result = probe("gradient-flow", make_setup(model=InfiniteGradient()))
    assert result.verdict is Verdict.FAIL and "non-finite-gradients" in rules(result)


# --- eval mode ------------------------------------------------------------------------------------

class FunctionalDropout(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(functional.dropout(self.body(x), 0.5))  # training=True by default


class DropoutInList(MLP):
    def __init__(self) -> None:
        super().__init__()
        self.noise = [nn.Dropout(0.5)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.noise[0](self.body(x)))


class CorrectFunctionalDropout(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(functional.dropout(self.body(x), 0.5, training=self.training))


@pytest.mark.parametrize("model", [FunctionalDropout, DropoutInList], ids=["functional-dropout", "dropout-in-list"])
def test_eval_mode_names_randomness_left_on_in_eval(model: type[nn.Module]) -> None:
    result = probe("eval-mode", make_setup(model=model()))
    assert result.verdict is Verdict.FAIL
    assert rules(result) == ["eval-mode-missing"] and result.evidence["eval_max_difference"] > 0


@pytest.mark.parametrize("model", [lambda: MLP(dropout=0.3), CorrectFunctionalDropout, lambda: MLP(dropout=0.0)],
                         ids=["dropout", "functional-with-training", "dropout-zero"])
def test_eval_mode_is_silent_on_correct_models(model) -> None:  # type: ignore[no-untyped-def]
    result = probe("eval-mode", make_setup(model=model()))
    assert result.verdict is Verdict.PASS and result.findings == []


class AlwaysEval(MLP):
    def train(self, mode: bool = True) -> AlwaysEval:
        return super().train(False)


def test_eval_mode_warns_when_modes_change_nothing() -> None:
    result = probe("eval-mode", make_setup(model=AlwaysEval(dropout=0.3)))
    assert rules(result) == ["eval-mode"] and result.verdict is Verdict.WARN


# --- checkpoint round-trip ------------------------------------------------------------------------

class UnsavedState(MLP):
    """Keeps a running scale as a plain tensor attribute: training changes it, state_dict() misses it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.ones(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.scale = self.scale * 0.5
        return super().forward(x) * self.scale


class CountingSGD(torch.optim.SGD):
    """Decays its step size with a step counter kept outside `self.state`: not in state_dict()."""

    def __init__(self, params, lr: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, lr=lr)
        self.count = 0

    def step(self, closure=None):  # type: ignore[no-untyped-def]
        self.count += 1
        for group in self.param_groups:
            group["lr"] = 0.1 / self.count
        return super().step(closure)


class OpaqueExtraState(MLP):
    def get_extra_state(self) -> object:
        return datetime.date(2024, 1, 1)

    def set_extra_state(self, state: object) -> None:
        pass


def test_checkpoint_passes_with_adam_state() -> None:
    result = probe("checkpoint", make_setup(optimizer=lambda params: torch.optim.Adam(params, lr=1e-2), model=MLP(dropout=0.2)))
    assert result.verdict is Verdict.PASS
    assert result.evidence["output_max_difference"] == 0.0 and result.evidence["next_step_max_difference"] == 0.0


def test_checkpoint_names_state_missing_from_the_state_dict() -> None:
    result = probe("checkpoint", make_setup(model=UnsavedState()))
    assert result.verdict is Verdict.FAIL and "not in state_dict()" in result.findings[0].message


def test_checkpoint_names_optimizer_state_that_does_not_round_trip() -> None:
    result = probe("checkpoint", make_setup(optimizer=lambda params: CountingSGD(params, lr=0.1)))
    assert result.verdict is Verdict.FAIL and "optimizer's state" in result.findings[0].message


def test_checkpoint_names_state_that_weights_only_refuses() -> None:
    result = probe("checkpoint", make_setup(model=OpaqueExtraState()))
    assert result.verdict is Verdict.FAIL and "weights_only=True" in result.findings[0].message


# --- non-finite outputs ---------------------------------------------------------------------------

class NaNOutputs(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


class NaNColumnWithEvalNoise(FunctionalDropout):
    """Randomness left on in eval mode, with one output column NaN: the finite columns still differ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).index_fill(1, torch.tensor([0]), float("nan"))


def test_nan_outputs_give_only_the_non_finite_findings() -> None:
    names = "loss-at-init,overfit-batch,gradient-flow,eval-mode,checkpoint"
    target = LoadedTarget("tests:setup", make_setup(model=NaNOutputs(dropout=0.3)), __file__, 1)
    results = {result.name: result for result in run_probes(target, select_probes(only=names), 30.0, torch.device("cpu"))}
    assert {finding.rule for result in results.values() for finding in result.findings} == {"non-finite-loss", "non-finite-gradients"}
    assert results["eval-mode"].verdict is Verdict.PASS and "not compared" in results["eval-mode"].summary
    assert results["checkpoint"].verdict is Verdict.PASS


def test_eval_mode_still_names_randomness_next_to_nan_outputs() -> None:
    result = probe("eval-mode", make_setup(model=NaNColumnWithEvalNoise()))
    assert rules(result) == ["eval-mode-missing"] and result.evidence["eval_max_difference"] > 0


@pytest.mark.parametrize(("first", "second", "expected"), [
    ([math.nan, 1.0], [math.nan, 1.0], False),
    ([math.inf, -math.inf], [math.inf, -math.inf], False),
    ([math.nan, 1.0], [1.0, math.nan], True),
    ([math.inf, 1.0], [1e30, 1.0], True),
    ([1e30, 1.0], [1e30, 2.0], False),  # within the tolerance relative to the scale
], ids=["same-nan", "same-inf", "nan-moved", "inf-vs-finite", "relative"])
def test_differ_treats_nan_and_inf_as_equal_to_themselves(first: list[float], second: list[float], expected: bool) -> None:
    assert differ(torch.tensor(first), torch.tensor(second), 1e-6)[0] is expected
