"""Comparing two model outputs (or parameter sets) with a tolerance relative to their scale."""

from __future__ import annotations

import torch

from trainguard.doctor.batches import tensors_in


def max_difference(first: object, second: object) -> tuple[float, float]:
    """Largest absolute difference between matching tensors of two outputs, and the largest
    magnitude in the first (NaN where either holds NaN, so that NaN never compares equal)."""
    pairs = [(a.detach().float().cpu(), b.detach().float().cpu()) for a, b in zip(tensors_in(first), tensors_in(second))]
    difference = max((float((a - b).abs().max()) for a, b in pairs if a.numel()), default=0.0)
    if any(bool(a.isnan().any() or b.isnan().any()) for a, b in pairs):
        difference = float("nan")
    scale = max((float(a.abs().max()) for a, _ in pairs if a.numel()), default=0.0)
    return difference, scale


def differ(first: object, second: object, tolerance: float) -> tuple[bool, float]:
    """Whether the outputs differ by more than `tolerance` times their scale (at least 1), and by how much."""
    difference, scale = max_difference(first, second)
    return not difference <= tolerance * max(1.0, scale), difference


def parameters_of(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's parameters, detached, in registration order (for comparing two copies)."""
    return [parameter.detach() for parameter in model.parameters()]
