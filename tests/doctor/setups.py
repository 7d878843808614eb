"""Small set-ups for the probe tests: a correct classifier on the demo's synthetic digits, with
one part swapped at a time for a faulty or a tricky-but-correct variant."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainguard.demo.digits import make_digits
from trainguard.doctor import Setup, run_probes, select_probes
from trainguard.doctor.probe import ProbeResult
from trainguard.doctor.setup import LoadedTarget

FEATURES, CLASSES = 64, 10


def digits(samples: int = 256, seed: int = 1) -> TensorDataset:
    """The demo's 8x8 digit images (flattened, normalised), labels 0..9."""
    return make_digits(samples, seed)


class MLP(nn.Module):
    def __init__(self, hidden: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def loader(data: Dataset, shuffle: bool = True, batch_size: int = 32) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(0) if shuffle else None)


def make_setup(**parts: Any) -> Setup:
    """The correct set-up, with `parts` (model, loss_fn, optimizer, train_data, val_data) replaced."""
    torch.manual_seed(0)
    values: dict[str, Any] = {
        "model": MLP(),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "train_data": loader(digits(256, seed=1)),
        "val_data": loader(digits(128, seed=2), shuffle=False, batch_size=64),
    }
    values.update(parts)
    return Setup(**values)


def probe(name: str, setup: Setup, budget: float = 30.0) -> ProbeResult:
    """Run one probe on `setup` the way the command does (preconditions, blockers, budget)."""
    target = LoadedTarget("tests:setup", setup, __file__, 1)
    (result,) = run_probes(target, select_probes(only=name), budget, torch.device("cpu"))
    return result


def rules(result: ProbeResult) -> list[str]:
    return sorted(finding.rule for finding in result.findings)
