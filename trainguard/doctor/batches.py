"""Reading samples and batches from the set-up's data, and calling the model and loss on them,
the same way for a `Dataset` and a `DataLoader` (map-style or iterable)."""

from __future__ import annotations

from itertools import islice
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler, default_collate

Batch = tuple[Any, torch.Tensor]
# Samplers are drawn from up to this many indices: enough to spread a few thousand samples over.
_MAX_INDICES = 1_000_000


def dataset_of(data: Dataset | DataLoader) -> Dataset:
    """The data set itself, whether given bare or inside a loader."""
    return data.dataset if isinstance(data, DataLoader) else data


def is_map_style(data: Dataset | DataLoader) -> bool:
    """Whether the data can be indexed and has a length (not an iterable-style data set)."""
    dataset = dataset_of(data)
    return not isinstance(dataset, IterableDataset) and hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")


def spread(items: Sequence[int], count: int) -> list[int]:
    """`count` of `items` spread evenly over them: a sorted data set still yields every class."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def _loader_indices(loader: DataLoader) -> Sequence[int]:
    """The indices a loader reads: all of its data set for a plain sequential or shuffled loader,
    else what its sampler draws (a subset sampler reads only its part of a shared data set)."""
    sampler = loader.sampler
    default_batching = loader.batch_sampler is None or type(loader.batch_sampler) is BatchSampler
    if default_batching and isinstance(sampler, (SequentialSampler, RandomSampler)) and not getattr(sampler, "replacement", False):
        return range(len(loader.dataset))  # type: ignore[arg-type]
    drawn = (index for batch in loader.batch_sampler for index in batch) if loader.batch_sampler is not None else iter(sampler)
    return list(islice(drawn, _MAX_INDICES))


def read_samples(data: Dataset | DataLoader, count: int) -> list[Any]:
    """Up to `count` individual samples, spread over what a map-style data set (or its loader)
    reads, else the first ones of an iterable data set."""
    dataset = dataset_of(data)
    if is_map_style(data):
        indices = _loader_indices(data) if isinstance(data, DataLoader) else range(len(dataset))  # type: ignore[arg-type]
        return [dataset[index] for index in spread(indices, count)]
    if isinstance(data, DataLoader) and data.batch_size is not None:
        samples: list[Any] = []
        for inputs, targets in data:  # iterable data: only the loader knows how to read it
            samples.extend(zip(_unbind(inputs), targets))
            if len(samples) >= count:
                break
        return samples[:count]
    return list(islice(iter(dataset), count))


def _unbind(inputs: Any) -> list[Any]:
    if isinstance(inputs, (tuple, list)):
        return [tuple(parts) for parts in zip(*(_unbind(part) for part in inputs))]
    return list(inputs)


def collate(data: Dataset | DataLoader, samples: Sequence[Any]) -> Batch:
    """Samples into one `(inputs, targets)` batch, with the loader's own collate function if any."""
    if isinstance(data, DataLoader) and data.batch_size is not None:
        batch = data.collate_fn(list(samples))
    else:
        batch = default_collate(list(samples))
    inputs, targets = batch
    return inputs, targets


def batch_size_of(data: Dataset | DataLoader, default: int = 32) -> int:
    """The loader's batch size, or `default` for a bare data set or a loader without batching."""
    if isinstance(data, DataLoader) and data.batch_size:
        return int(data.batch_size)
    return default


def to_device(value: Any, device: torch.device) -> Any:
    """A tensor, or a tuple/list of them, moved to `device` (anything else unchanged)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(part, device) for part in value)
    return value


def forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    """`model(inputs)`, or `model(*inputs)` when the inputs are a tuple or list of tensors."""
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in a tensor, tuple, list or dict (a batch's inputs, a model's outputs)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [tensor for part in value for tensor in tensors_in(part)]
    return []


def sample_count(inputs: Any) -> int:
    """How many samples a batch's inputs hold (the first tensor's first dimension)."""
    tensors = tensors_in(inputs)
    return int(tensors[0].shape[0]) if tensors and tensors[0].dim() else 1
