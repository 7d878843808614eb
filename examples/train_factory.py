"""Your own model and data for `trainguard train`: a factory returning what fit() needs.

    trainguard train --config examples/train_factory.toml --out runs/factory

`build()` returns the model, the loss, the optimizer (as a function of the parameters, so that
the pipeline makes it after moving the model to its device), the datasets, and optionally a
learning-rate schedule (a function of the optimizer) and validation metrics.
"""

import torch
from torch import nn
from torch.utils.data import TensorDataset


class SmallConvNet(nn.Module):
    """A small CNN for 1x16x16 images."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


def stripes(count: int, seed: int) -> TensorDataset:
    """Noisy images of stripes in one of four orientations (the label), made on the fly."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (count,), generator=generator)
    rows, columns = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    patterns = torch.stack([rows, columns, rows + columns, rows - columns]).div(2).sin()
    images = patterns[labels] + 0.5 * torch.randn(count, 16, 16, generator=generator)
    return TensorDataset(images.unsqueeze(1), labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == labels).float().mean()


def build() -> dict:
    return {
        "model": SmallConvNet(),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": lambda parameters: torch.optim.AdamW(parameters, lr=3e-3),
        "scheduler": lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=40, gamma=0.5),
        "train_data": stripes(512, seed=1),
        "val_data": stripes(128, seed=2),
        "metrics": {"accuracy": accuracy},
    }
