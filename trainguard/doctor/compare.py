"""Comparing two model outputs (or parameter sets) with a tolerance relative to their scale.

NaN and infinities compare equal to themselves here: a model whose outputs are NaN gives the same
NaN in two passes, and that is reported by the probes about non-finite values, not as a difference.
"""

from __future__ import annotations

import torch

from trainguard.doctor.batches import tensors_in


def _pairs(first: object, second: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(a.detach().float().cpu(), b.detach().float().cpu()) for a, b in zip(tensors_in(first), tensors_in(second))]


def _difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| elementwise, 0 where both hold the same value (NaN and NaN, inf and inf included),
    NaN where only one holds NaN."""
    same = (a == b) | (a.isnan() & b.isnan())
    return (a - b).abs().masked_fill(same, 0.0)


def max_difference(first: object, second: object) -> tuple[float, float]:
    """Largest absolute difference between matching tensors of two outputs (NaN where a value is
    NaN in one and not in the other), and the largest finite magnitude in the first."""
    pairs = [(a, b) for a, b in _pairs(first, second) if a.numel()]
    differences = [_difference(a, b) for a, b in pairs]
    difference = max((float(d.max()) for d in differences), default=0.0)
    if any(bool(d.isnan().any()) for d in differences):
        difference = float("nan")
    scale = max((float(a[a.isfinite()].abs().max()) for a, _ in pairs if bool(a.isfinite().any())), default=0.0)
    return difference, scale


def all_finite(output: object) -> bool:
    """Whether every value of every tensor in `output` is finite."""
    return all(bool(tensor.detach().isfinite().all()) for tensor in tensors_in(output))


def differ(first: object, second: object, tolerance: float) -> tuple[bool, float]:
    """Whether the outputs differ by more than `tolerance` times their scale (at least 1), and by how much."""
    difference, scale = max_difference(first, second)
    return not difference <= tolerance * max(1.0, scale), difference


def parameters_of(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's parameters, detached, in registration order (for comparing two copies)."""
    return [parameter.detach() for parameter in model.parameters()]
