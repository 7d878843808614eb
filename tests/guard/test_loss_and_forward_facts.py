"""The facts that the label and padding rules (TG112, TG307, TG310) read from loss and forward
events: a loss's ignore_index and class weights however they were passed, whether it ran inside a
model's forward, and the integer tensors a model was called with, from its very first call on."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainguard
from trainguard.runtime import detectors as detectors_package
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, LossCall


class SelfScoring(nn.Module):
    """A model that computes its own loss when given labels (as Hugging Face models do)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.head(self.embed(input_ids))
        return logits if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The loss and forward events of a guarded run, as the detectors get them."""
    events: dict[str, list[Any]] = {"loss": [], "forward": []}

    class Recorder(Detector):
        code = "TG307"

        def on_loss(self, event: LossCall) -> None:
            events["loss"].append((event.name, event.ignore_index, event.weight, event.reduction, event.in_forward))

        def on_forward(self, event: ForwardCall) -> None:
            events["forward"].append({key: ref() for key, ref in event.integer_inputs.items()})

    real = detectors_package.subclasses_in
    monkeypatch.setattr(detectors_package, "subclasses_in", lambda *args: [*real(*args), Recorder])
    return events


def test_loss_events_carry_ignore_index_and_weight_however_passed(recorded: dict[str, list[Any]]) -> None:
    logits, target, weight = torch.randn(6, 3, requires_grad=True), torch.tensor([0, 1, 2, 0, 1, 2]), torch.ones(3)
    with trainguard.watch(echo=False, select="TG307"):
        F.cross_entropy(logits, target)
        F.cross_entropy(logits, target, weight, None, 2, None, "sum")  # every argument positional
        nn.CrossEntropyLoss(ignore_index=1)(logits, target)
        nn.NLLLoss(weight=weight)(logits.log_softmax(1), target)
        F.mse_loss(logits, torch.zeros(6, 3))
    assert recorded["loss"] == [
        ("cross_entropy", -100, None, "mean", False),
        ("cross_entropy", 2, weight, "sum", False),
        ("cross_entropy", 1, None, "mean", False),
        ("nll_loss", -100, weight, "mean", False),
        ("mse_loss", None, None, "mean", False),
    ]


def test_a_loss_computed_inside_a_models_forward_says_so(recorded: dict[str, list[Any]]) -> None:
    model, ids = SelfScoring(), torch.randint(0, 10, (2, 5))
    with trainguard.watch(echo=False, select="TG307"):
        model(ids, labels=ids)
        F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    assert [in_forward for *_, in_forward in recorded["loss"]] == [True, False]


def test_forward_events_carry_integer_inputs_by_position_and_keyword_from_the_first_call(recorded: dict[str, list[Any]]) -> None:
    model, ids, labels = SelfScoring(), torch.randint(0, 10, (2, 5)), torch.randint(0, 10, (2, 5))
    with trainguard.watch(echo=False, select="TG307"):
        model(input_ids=ids, labels=labels)  # the first call: the global pre-hook finds the model
        model(ids, labels=labels)
    first, second = recorded["forward"]
    assert set(first) == {"input_ids", "labels"} and first["input_ids"] is ids and first["labels"] is labels
    assert set(second) == {0, "labels"} and second[0] is ids


class Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.linear(features) * mask[:, None]


def test_float_and_boolean_tensors_are_not_integer_inputs(recorded: dict[str, list[Any]]) -> None:
    model, mask = Masked(), torch.tensor([True, False, True])
    with trainguard.watch(echo=False, select="TG307"):
        model(torch.randn(3, 4), mask=mask)
        model(torch.randn(3, 4), mask)
    assert recorded["forward"] == [{}, {}]
