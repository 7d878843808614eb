"""A correct training set-up for `trainguard doctor`: every probe passes.

    trainguard doctor examples/doctor_correct.py:setup

Four classes of Gaussian blobs in 16 dimensions, made here (nothing to download), and a small MLP
classifier with BatchNorm and Dropout trained with SGD on raw logits and integer labels. The
training loader shuffles with a seeded generator; the validation loader does not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES, CLASSES = 16, 4


def make_blobs(samples: int, seed: int) -> TensorDataset:
    """`samples` points (float32, standardised) around one fixed centre per class, labels 0..CLASSES-1."""
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(0)) * 1.5
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (samples,), generator=generator)
    points = centres[labels] + torch.randn(samples, FEATURES, generator=generator)
    return TensorDataset((points - points.mean(dim=0)) / points.std(dim=0), labels)


class BlobClassifier(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(x))


def setup_with(model: nn.Module, train_data: DataLoader, val_data: DataLoader) -> dict[str, object]:
    """The set-up dict: `model` with cross-entropy on logits and SGD with momentum."""
    return {
        "model": model,
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "train_data": train_data,
        "val_data": val_data,
    }


def setup() -> dict[str, object]:
    torch.manual_seed(0)
    train = DataLoader(make_blobs(2048, seed=1), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    return setup_with(BlobClassifier(), train, DataLoader(make_blobs(512, seed=2), batch_size=256))
