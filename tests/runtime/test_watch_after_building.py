"""TG208 train-override-not-called judges only models built while the guard was installed: with
`trainguard.watch()` called after the model was built (and perhaps after its `train()` ran, which
the guard cannot see), it stays silent rather than guess."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import trainguard


class FreezesItsStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.head = nn.Linear(8, 2)

    def train(self, mode: bool = True) -> FreezesItsStem:
        super().train(mode)
        self.stem.requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


def _codes(watch_before_building: bool, call_train: bool) -> list[str]:
    torch.manual_seed(0)
    handle = trainguard.watch(echo=False) if watch_before_building else None
    model = FreezesItsStem()
    if call_train:
        model.train()
    if handle is None:
        handle = trainguard.watch(echo=False)
    with handle:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(model(torch.randn(4, 4)), torch.randint(0, 2, (4,))).backward()
            optimizer.step()
        return [f.code for f in handle.findings]


def test_a_model_built_under_the_guard_is_judged() -> None:
    assert _codes(watch_before_building=True, call_train=False) == ["TG208"]


def test_a_model_built_before_watch_is_not_judged_its_train_may_have_run_unseen() -> None:
    assert _codes(watch_before_building=False, call_train=True) == []
