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


READERS = ("item", "tolist", "__bool__", "__float__", "__int__")
CHECKS = {"trainguard.runtime.detectors." + name for name in ("accumulation_token_mean", "padding_in_loss", "labels_shifted_twice")}


def test_the_label_checks_read_tensor_values_only_in_sampled_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host reads (a device synchronisation on an accelerator) by TG112/TG307/TG310, counted by
    whether the step was sampled: reads happen in detailed windows and nowhere else."""
    import sys

    from transformers import GPT2Config, GPT2LMHeadModel

    from trainguard.runtime.api import active_session

    reads = {True: 0, False: 0}
    for name in READERS:
        original = getattr(torch.Tensor, name)

        def reader(tensor: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            session = active_session()
            if session is not None and sys._getframe(1).f_globals.get("__name__") in CHECKS:
                reads[session.detailed] += 1
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, reader)

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with trainguard.watch(echo=False, select="TG112,TG307,TG310"):
        for step in range(60):  # detailed: steps 0-19 and 50
            for micro in range(2):
                lengths = torch.randint(3, 13, (4,))
                ids = torch.randint(2, 32, (4, 12)).masked_fill(torch.arange(12) >= lengths[:, None], 0)
                labels = ids.masked_fill(ids == 0, -100)
                (model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels).loss / 2).backward()
            optimizer.step()
            optimizer.zero_grad()
    assert reads[True] > 0 and reads[False] == 0, reads
