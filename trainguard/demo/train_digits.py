"""The demo's training script: a small digit classifier (as the training course of docs/rules.md
writes it), with an optional planted bug.

    python -m trainguard.demo.train_digits [--bug missing-zero-grad] [--epochs 5] [--result F.json]

A plain PyTorch loop, written the way that course teaches it; `--bug missing-zero-grad` drops the
`optimizer.zero_grad()` line, the failure of the 200-epoch post-mortem.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainguard.demo.digits import make_digits


class DigitClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bug", choices=("none", "missing-zero-grad"), default="none")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--result", help="write the final validation accuracy here (JSON)")
    args = parser.parse_args()

    torch.manual_seed(0)
    train_loader = DataLoader(make_digits(2000, seed=1), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_data = make_digits(500, seed=2)
    val_loader = DataLoader(val_data, batch_size=256)
    model = DigitClassifier()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    accuracy = 0.0
    for epoch in range(args.epochs):
        model.train()
        for images, labels in train_loader:
            if args.bug != "missing-zero-grad":
                optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += (model(images).argmax(dim=1) == labels).sum().item()
        accuracy = correct / len(val_data)
        print(f"epoch {epoch + 1}: train loss {loss.item():.3f}, validation accuracy {accuracy:.1%}")
    if args.result:
        with open(args.result, "w", encoding="utf-8") as out:
            json.dump({"accuracy": accuracy}, out)


if __name__ == "__main__":
    main()
