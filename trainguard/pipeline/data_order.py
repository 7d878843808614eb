"""Loaders whose order is a pure function of (seed, epoch), and that can start mid-epoch.

Nothing here draws from the global RNG: the training order comes from a generator seeded with
(seed, epoch), and every DataLoader gets its own generator (without one, each `iter(loader)` draws
its workers' base seed from the global torch RNG, which would shift dropout after a resume).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterator, Sized

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def derived_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from `parts` (neighbouring epochs get unrelated orders)."""
    digest = hashlib.blake2b(":".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochOrder(Sampler[int]):
    """Rank `rank`'s share of a permutation of `size` indices fixed by (seed, epoch), from
    position `start` of that share on.

    With several ranks the permutation is padded by repeating its head (as DistributedSampler
    does) so that every rank gets `samples_per_rank(size, world)` indices and takes as many steps.
    """

    def __init__(self, size: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.epoch, self.start, self.rank, self.world = size, seed, epoch, start, rank, world

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, "order"))
        order = torch.randperm(self.size, generator=generator).tolist()
        padded = samples_per_rank(self.size, self.world) * self.world
        order = (order * math.ceil(padded / self.size))[:padded]
        return iter(order[self.rank::self.world][self.start:])

    def __len__(self) -> int:
        return max(0, samples_per_rank(self.size, self.world) - self.start)


def samples_per_rank(size: int, world: int) -> int:
    """Training samples each rank reads per epoch."""
    return math.ceil(size / world)


def batches_per_epoch(dataset: Sized, batch_size: int, world: int = 1) -> int:
    """Micro-batches per rank in one epoch (the last one may be smaller: nothing is dropped)."""
    return math.ceil(samples_per_rank(len(dataset), world) / batch_size)


def train_loader(dataset: Dataset, *, batch_size: int, seed: int, epoch: int, start_batch: int, num_workers: int,
                 rank: int = 0, world: int = 1) -> DataLoader:
    """The training loader for `epoch`, skipping its first `start_batch` micro-batches.

    Skipping happens in the sampler, so no skipped sample is loaded. With workers, a skipped
    batch shifts which worker loads the following ones: randomness inside `Dataset.__getitem__`
    must then be seeded from the sample index for a resume to be exact.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochOrder(len(dataset), seed, epoch, start_batch * batch_size, rank, world),  # type: ignore[arg-type]
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(derived_seed(seed, epoch, "workers")),
    )


def eval_loader(data: Dataset | DataLoader, *, batch_size: int, num_workers: int) -> DataLoader:
    """The validation loader: in order, with its own generator (see the module docstring)."""
    if isinstance(data, DataLoader):
        if data.generator is None:  # a shuffled one's sampler may still draw from the global RNG
            data.generator = torch.Generator().manual_seed(0)
        return data
    # Built once per fit(): persistent workers are started at the first evaluation, not at each.
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0))


def sample_count(targets: Any) -> int:
    """How many samples a batch's targets hold (the first dimension)."""
    return int(targets.shape[0]) if isinstance(targets, torch.Tensor) else len(targets)
