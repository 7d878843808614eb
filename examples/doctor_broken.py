"""A training set-up with four planted defects, each named by `trainguard doctor`:

    trainguard doctor examples/doctor_broken.py:setup

1. a hidden layer kept in a plain Python list (unregistered-module: never trained, never saved);
2. softmax applied before CrossEntropyLoss (softmax-before-cross-entropy);
3. labels 1..4 for a model with 4 outputs, one class off (data-sanity: label 4 is out of range);
4. a training DataLoader without shuffle=True (train-loader-not-shuffled).

The data, loss and optimizer are the correct example's.
"""

from __future__ import annotations

import torch
from doctor_correct import CLASSES, FEATURES, make_blobs, setup_with
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class BrokenClassifier(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, hidden)
        self.blocks = [nn.Linear(hidden, hidden), nn.ReLU()]  # defect 1: a plain list registers nothing
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        for block in self.blocks:
            x = block(x)
        return torch.softmax(self.head(x), dim=1)  # defect 2: CrossEntropyLoss wants the logits


def _shifted(data: TensorDataset) -> TensorDataset:
    points, labels = data.tensors
    return TensorDataset(points, labels + 1)  # defect 3: labels 1..CLASSES instead of 0..CLASSES-1


def setup() -> dict[str, object]:
    torch.manual_seed(0)
    train = DataLoader(_shifted(make_blobs(2048, seed=1)), batch_size=64)  # defect 4: no shuffle=True
    return setup_with(BrokenClassifier(), train, DataLoader(_shifted(make_blobs(512, seed=2)), batch_size=256))
