"""A small 8x8 handwritten-digit-like data set, drawn on the fly (nothing to download).

Each digit is a fixed 8x8 glyph; samples are shifted by up to one pixel, their stroke intensity
varies and Gaussian noise is added, which makes a 10-class problem that a small MLP learns to
about 95 % in a few epochs, and that a silent training bug visibly spoils.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

_GLYPHS = {
    0: ["..####..", ".##..##.", ".##..##.", ".##..##.", ".##..##.", ".##..##.", "..####..", "........"],
    1: ["...##...", "..###...", "...##...", "...##...", "...##...", "...##...", "..####..", "........"],
    2: ["..####..", ".##..##.", ".....##.", "....##..", "...##...", "..##....", ".######.", "........"],
    3: ["..####..", ".##..##.", ".....##.", "...###..", ".....##.", ".##..##.", "..####..", "........"],
    4: ["....##..", "...###..", "..#.##..", ".#..##..", ".######.", "....##..", "....##..", "........"],
    5: [".######.", ".##.....", ".#####..", ".....##.", ".....##.", ".##..##.", "..####..", "........"],
    6: ["..####..", ".##.....", ".#####..", ".##..##.", ".##..##.", ".##..##.", "..####..", "........"],
    7: [".######.", ".....##.", "....##..", "...##...", "...##...", "...##...", "...##...", "........"],
    8: ["..####..", ".##..##.", ".##..##.", "..####..", ".##..##.", ".##..##.", "..####..", "........"],
    9: ["..####..", ".##..##.", ".##..##.", "..#####.", ".....##.", "....##..", "..###...", "........"],
}


def _glyph(digit: int) -> torch.Tensor:
    return torch.tensor([[1.0 if c == "#" else 0.0 for c in row] for row in _GLYPHS[digit]])


def make_digits(samples: int, seed: int, noise: float = 0.3) -> TensorDataset:
    """`samples` images (float32, [N, 64], normalised) with labels (int64, [N]) from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    glyphs = torch.stack([_glyph(d) for d in range(10)])
    labels = torch.randint(0, 10, (samples,), generator=generator)
    images = glyphs[labels]
    shifts = torch.randint(-1, 2, (samples, 2), generator=generator)
    images = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(0, 1)) for img, (dy, dx) in zip(images, shifts)])
    images = images * (0.6 + 0.4 * torch.rand(samples, 1, 1, generator=generator))
    images = images + noise * torch.randn(images.shape, generator=generator)
    flat = images.reshape(samples, 64)
    flat = (flat - flat.mean()) / flat.std()
    return TensorDataset(flat, labels)
