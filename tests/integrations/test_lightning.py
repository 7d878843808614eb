"""`trainguard.integrations.lightning.TrainguardCallback` in real Lightning training of tiny models:
planted bugs that Lightning does not prevent are reported at the user's line, correct runs (also
with the rules Lightning takes care of switched on) stay silent, and the callback changes nothing
about the training and cleans up after itself."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainguard
from trainguard.integrations.lightning import LOGGER, TrainguardCallback
from trainguard.runtime.api import active_session
from trainguard.runtime.callsite import display_path

from .expect import assert_one_error_logged_and_reported, line_of, records_of

THIS_FILE = display_path(__file__)  # as findings show it


class Classifier(pl.LightningModule):
    """A small classifier; `bug` plants one of the mistakes Lightning does not prevent."""

    def __init__(self, bug: str = "", manual: bool = False) -> None:
        super().__init__()
        self.bug = bug
        self.automatic_optimization = not manual
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(16, 3)
        self.refine = [nn.Linear(3, 3)] if bug == "plain-list" else []
        self.losses: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.body(x))
        for layer in self.refine:
            logits = layer(logits)  # <plain-list>
        return logits

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor | None:
        x, y = batch
        logits = self(x)  # <forward>
        if self.bug == "softmax":
            logits = logits.softmax(dim=-1)
        loss = F.cross_entropy(logits, y)  # <loss>
        if self.bug == "kept-losses":
            self.losses.append(loss)
        if self.automatic_optimization:
            return loss
        optimizer = self.optimizers()
        self.manual_backward(loss)
        optimizer.step()  # <manual-step>
        if self.bug != "no-zero-grad":
            optimizer.zero_grad()
        return None

    def validation_step(self, batch: Any, batch_index: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> Any:
        params = self.body.parameters() if self.bug == "missing-params" else self.parameters()
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)}


def fit(module: pl.LightningModule, callbacks: list[Any], **trainer_options: Any) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(96, 8), torch.randint(0, 3, (96,)))
    train = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    val = DataLoader(data, batch_size=48)
    options = dict(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and loggers
        trainer = pl.Trainer(callbacks=callbacks, **{**options, **trainer_options})
        trainer.fit(module, train, val)  # <fit>


def fp16_with_cpu_grad_scaler() -> dict[str, Any]:
    # Lightning turns precision="16-mixed" into bf16 on the CPU; its plugin with a CPU GradScaler
    # runs the real fp16 path: scale, unscale_ before clipping, scaler.step.
    scaler = torch.amp.GradScaler("cpu")
    return {"plugins": [pl.plugins.MixedPrecision("16-mixed", "cpu", scaler=scaler)], "gradient_clip_val": 1.0}


CORRECT_SETUPS = {
    "fp32": lambda: {},
    "bf16-accumulation-clipping": lambda: {"precision": "bf16-mixed", "accumulate_grad_batches": 2, "gradient_clip_val": 1.0},
    "fp16-grad-scaler-clipping": fp16_with_cpu_grad_scaler,
}


@pytest.mark.parametrize("setup", CORRECT_SETUPS, ids=list(CORRECT_SETUPS))
def test_correct_training_is_silent_even_with_the_prevented_rules_on(setup: str) -> None:
    callback = TrainguardCallback(include_prevented=True)
    fit(Classifier(), [callback], **CORRECT_SETUPS[setup]())
    assert callback.findings == []
    assert active_session() is None


@pytest.mark.parametrize(
    ("bug", "code", "marker"),
    [
        ("softmax", "TG302", "loss"),
        ("plain-list", "TG301", "plain-list"),
        ("kept-losses", "TG204", "forward"),
        # Found at the optimizer step; Lightning calls it from trainer.fit(), the user's last frame.
        ("missing-params", "TG105", "fit"),
    ],
)
def test_planted_bug_is_reported_at_the_user_line(bug: str, code: str, marker: str) -> None:
    callback = TrainguardCallback()
    fit(Classifier(bug), [callback])
    assert [(f.code, f.path, f.line) for f in callback.findings] == [(code, THIS_FILE, line_of(__file__, marker))]


def test_manual_optimization_checks_zero_grad_which_lightning_leaves_to_the_user() -> None:
    callback = TrainguardCallback()
    fit(Classifier("no-zero-grad", manual=True), [callback])
    [finding] = callback.findings
    assert (finding.code, finding.path, finding.line, finding.step) == ("TG101", THIS_FILE, line_of(__file__, "manual-step"), 1)


def test_findings_are_logged_and_written_to_the_report(tmp_path: Path) -> None:
    with records_of(LOGGER) as records:
        callback = TrainguardCallback(report=tmp_path / "report.json")
        fit(Classifier("softmax"), [callback])
    assert LOGGER.name.startswith("lightning.pytorch.")
    assert_one_error_logged_and_reported(
        records, tmp_path / "report.json", "TG302 softmax-before-cross-entropy", THIS_FILE, line_of(__file__, "loss")
    )


def test_an_installed_guard_is_used_and_left_installed() -> None:
    outer = trainguard.watch(echo=False)
    try:
        callback = TrainguardCallback()
        fit(Classifier("softmax"), [callback])
        assert active_session() is outer.session
        assert [f.code for f in callback.findings] == [f.code for f in outer.findings] == ["TG302"]
    finally:
        trainguard.unwatch()


def test_strict_stops_at_the_first_error_and_cleans_up() -> None:
    callback = TrainguardCallback(strict=True)
    with pytest.raises(trainguard.GuardStop, match="TG302"):
        fit(Classifier("softmax"), [callback])
    assert active_session() is None
    assert [f.code for f in callback.findings] == ["TG302"]


def test_training_is_bitwise_identical_with_the_callback() -> None:
    """The guard wraps Lightning's closure to see the step start after it: the result must not change."""
    weights = []
    for callbacks in ([], [TrainguardCallback()]):
        torch.manual_seed(0)
        module = Classifier()
        fit(module, callbacks, accumulate_grad_batches=2, gradient_clip_val=1.0)
        weights.append({name: value.clone() for name, value in module.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
