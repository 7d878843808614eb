"""Row fingerprints of data batches: one integer per sample, equal for equal samples.

TG504, TG505 and TG804 compare samples (across the training and validation data, across two
evaluations, across ranks) without keeping them. A sample's fingerprint is a hash of the exact
bits of every tensor in its batch row: the row's bit patterns, read as integers, times fixed odd
pseudo-random coefficients, summed with wrap-around (int64). Equal rows give equal fingerprints
on every process; different rows collide with a probability of about 2**-60, unless they differ
only outside the at most `MAX_COLUMNS` evenly spread elements per tensor that are read (which
keeps a batch of images cheap to hash; a different image or a random crop differs nearly
everywhere).

Reading a fingerprint copies it to the host, which waits for an accelerator: callers hash only
on the few steps and evaluations they sample, never in steady state.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import torch

MAX_COLUMNS = 4096
# How many tensors of a (possibly nested) batch are hashed, at most.
_MAX_TENSORS = 8
_INTEGER_VIEW = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# Mixes the fingerprints of a row's several tensors (a large odd 63-bit constant).
_MIX = 0x5BD1E9955BD1E995


def batch_tensors(batch: Any) -> list[torch.Tensor]:
    """The tensors of a batch as a DataLoader collates it: a tensor, or a tuple/list/dict of
    tensors (one level of nesting), in order; other values are left out."""
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        items: list[Any] = list(batch.values())
    elif isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        items = list(batch)
    else:
        return []
    found: list[torch.Tensor] = []
    for item in items:
        nested = [item] if isinstance(item, torch.Tensor) else batch_tensors(item) if isinstance(item, (Mapping, list, tuple)) else []
        found.extend(t for t in nested if isinstance(t, torch.Tensor))
    return found[:_MAX_TENSORS]


@lru_cache(maxsize=64)
def _coefficients(columns: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(columns)
    odd = torch.randint(-(2**62), 2**62, (columns,), generator=generator, dtype=torch.int64) | 1
    return odd.to(device)


def _row_hashes(tensor: torch.Tensor, rows: int) -> torch.Tensor | None:
    """Per row of `tensor` (its first dimension has `rows` entries), a wrapped int64 sum of its
    bit patterns times fixed odd coefficients; None for a tensor that cannot be hashed so."""
    if (
        tensor.dim() == 0 or tensor.shape[0] != rows or tensor.is_sparse or tensor.is_complex() or tensor.is_quantized
        or tensor.is_nested or tensor.is_meta or type(tensor) is not torch.Tensor and not isinstance(tensor, torch.nn.Parameter)
    ):
        return None  # no plain dense rows of bits to read (or a tensor subclass that may not give them)
    view = _INTEGER_VIEW.get(tensor.element_size())
    if view is None:
        return None
    flat = tensor.detach().reshape(rows, -1)
    if flat.shape[1] > MAX_COLUMNS:
        spread = torch.linspace(0, flat.shape[1] - 1, MAX_COLUMNS, device=flat.device).long()
        flat = flat.index_select(1, spread)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.int8)
    bits = flat.contiguous().view(view).to(torch.int64)
    return (bits * _coefficients(bits.shape[1], bits.device)).sum(dim=1)


def _hashes(batch: Any) -> list[torch.Tensor]:
    """Per hashable tensor of the batch with a batch dimension, its row hashes (on its device)."""
    tensors = [t for t in batch_tensors(batch) if t.dim() > 0]
    if not tensors:
        return []
    rows = tensors[0].shape[0]
    hashes = [_row_hashes(tensor, rows) for tensor in tensors]
    return [h.to(tensors[0].device) for h in hashes if h is not None]


def row_fingerprints(batch: Any) -> list[int] | None:
    """One fingerprint per sample of a collated batch (rows of every tensor whose first dimension
    is the batch size), or None when the batch holds no tensor with a batch dimension."""
    hashes = _hashes(batch)
    if not hashes:
        return None
    combined = hashes[0]
    for more in hashes[1:]:
        combined = combined * _MIX + more
    return combined.cpu().tolist()


def row_shape(batch: Any) -> tuple[tuple[int, ...], ...]:
    """The shape of one sample of a collated batch (per tensor, without the batch dimension): a
    collate_fn that pads to the batch's longest sample gives one sample other shapes in other
    batches, and bits that cannot be compared."""
    return tuple(tuple(t.shape[1:]) for t in batch_tensors(batch) if t.dim() > 0)


def row_fingerprints_by_tensor(batch: Any) -> list[tuple[int, ...]] | None:
    """Per sample, one fingerprint per tensor of the batch (e.g. (input, label)): which part of
    a sample changed. None as for `row_fingerprints`."""
    hashes = _hashes(batch)
    if not hashes:
        return None
    return [tuple(row) for row in torch.stack(hashes, dim=1).cpu().tolist()]


def plain_indices(indices: Any) -> list[int] | None:
    """A batch's sampler indices (`LoaderBatch.indices`) as Python ints, or None when they are not
    integers (an iterable dataset's placeholders, a sampler that yields keys)."""
    if indices is None:
        return None
    try:
        return [operator.index(i) for i in indices]
    except TypeError:
        return None
