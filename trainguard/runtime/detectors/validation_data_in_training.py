"""TG504 validation-data-in-training: validation samples that the model is also trained on.

Two ways of knowing which samples a loader reads:

- by index, where the loaders expose it: a loader's samples are its sampler's indices mapped
  through `Subset` and `ConcatDataset` down to the dataset that holds the data (or, for a
  `TensorDataset` over a slice of a bigger tensor, down to rows of that tensor's storage). Two
  `random_split` calls with different generators, or a training loader built on the whole
  dataset, show as validation indices that are training indices too. Judged exactly at the first
  evaluation batch.
- by content, for loaders over unrelated datasets (copies, files read twice): the rows of the
  training batches of the first `FULL_STEPS` steps are fingerprinted, and so are the rows of
  the first evaluation pass of each evaluation loader; judged when that pass ends.

What stays silent: an evaluation on the training loader itself, or on a loader over the very
same samples (measuring training accuracy on purpose); overlaps below `leak_share` (duplicate
rows that two sources share by chance); content whose training rows repeat within a batch
(low-entropy data such as one-hot tables, where equal rows are not equal samples). What is only
`info`: every validation sample is a training sample but not the other way round (by index), and
any overlap found by content: a deliberate evaluation on part of the training data (training
accuracy on a subset) looks the same as a leak there.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
)
from torch.utils.data.distributed import DistributedSampler

from trainguard.findings import Severity
from trainguard.runtime.callsite import Location
from trainguard.runtime.context import FULL_STEPS, DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import BackwardCall, Finish, ForwardCall, LoaderBatch, StepStart
from trainguard.runtime.fingerprints import row_fingerprints
from trainguard.runtime.loader_roles import LoaderRoles, Role

# Index sets above this size are not built (memory and time of a one-off set intersection).
MAX_INDEXED_SAMPLES = 2_000_000
# Content fingerprints kept: training rows, and rows of one evaluation pass per loader.
MAX_TRAIN_ROWS = 8192
MAX_EVAL_ROWS = 16384
# A content overlap needs at least this many training rows to judge from, and this many shared.
MIN_TRAIN_ROWS = 32
MIN_SHARED_ROWS = 3
# Training batches whose rows are less distinct than this hold low-entropy data: content says nothing.
MIN_DISTINCT_SHARE = 0.95

Samples = dict[Any, set[int]]  # the data's holder (a dataset's id, or a tensor storage) -> indices


def loader_samples(loader: DataLoader) -> Samples | None:
    """The samples a loader reads over an epoch (of every rank, under a DistributedSampler), by
    the object that holds them; None when its sampler or dataset does not say."""
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        return None
    sampler = loader.batch_sampler.sampler if isinstance(loader.batch_sampler, BatchSampler) else loader.sampler
    size = len(dataset)  # type: ignore[arg-type]
    if size > MAX_INDEXED_SAMPLES:
        return None
    if isinstance(sampler, (SequentialSampler, DistributedSampler)):
        local: Sequence[int] = range(size)
    elif isinstance(sampler, RandomSampler) and not sampler.replacement and sampler.num_samples == size:
        local = range(size)
    elif isinstance(sampler, SubsetRandomSampler):
        local = _as_list(sampler.indices)
    else:
        return None
    samples: Samples = {}
    _resolve(dataset, local, samples)
    return samples


def _as_list(indices: Any) -> list[int]:
    return [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]


def _resolve(dataset: Any, local: Sequence[int], samples: Samples) -> None:
    """Add to `samples` where the samples `local` of `dataset` live: the holding dataset's id (or,
    for a TensorDataset, its first tensor's storage) and their indices there."""
    if isinstance(dataset, Subset):
        inner = _as_list(dataset.indices)
        _resolve(dataset.dataset, [inner[i] for i in local], samples)
    elif isinstance(dataset, ConcatDataset):
        parts: dict[int, list[int]] = {}
        for index in local:
            part = bisect.bisect_right(dataset.cumulative_sizes, index)
            parts.setdefault(part, []).append(index - (dataset.cumulative_sizes[part - 1] if part else 0))
        for part, indices in parts.items():
            _resolve(dataset.datasets[part], indices, samples)
    elif isinstance(dataset, TensorDataset) and dataset.tensors[0].dim() > 0 and dataset.tensors[0].stride(0) > 0:
        # Slices of one tensor (x[:900], x[800:]) share its storage: the storage's rows are the samples.
        tensor = dataset.tensors[0]
        start, stride = tensor.storage_offset(), tensor.stride(0)
        holder = ("storage", tensor.untyped_storage().data_ptr(), stride, tensor.stride()[1:], start % stride)
        first = start // stride
        samples.setdefault(holder, set()).update(first + i for i in local)
    else:
        samples.setdefault(id(dataset), set()).update(local)


class ValidationDataInTraining(Detector):
    code = "TG504"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._leak_share = session.config.thresholds.leak_share
        self._roles = LoaderRoles(self._settled)
        self._training: weakref.WeakSet[DataLoader] = weakref.WeakSet()  # of the current training phase
        self._judged: weakref.WeakSet[DataLoader] = weakref.WeakSet()
        # An evaluation ran since the last training batch: the next one starts a training phase.
        self._evaluating = False
        # Evaluation loaders whose indices say nothing about the training loaders': content decides.
        self._unrelated: weakref.WeakSet[DataLoader] = weakref.WeakSet()
        # Content: training row fingerprints, rows hashed and distinct per batch (summed).
        self._train_rows: set[int] = set()
        self._rows_hashed = 0
        self._rows_distinct = 0
        # Content: the evaluation pass being collected, per loader: its rows and where it was iterated.
        self._eval_rows: weakref.WeakKeyDictionary[DataLoader, tuple[set[int], Location]] = weakref.WeakKeyDictionary()

    # -- events ------------------------------------------------------------------------------
    def on_loader_batch(self, event: LoaderBatch) -> None:
        self._roles.batch_drawn(event)

    def on_forward(self, event: ForwardCall) -> None:
        self._roles.forward(event)

    def on_backward(self, event: BackwardCall) -> None:
        self._roles.backward()

    def on_step_start(self, event: StepStart) -> None:
        self._roles.step_started()
        self._judge_content()

    def on_finish(self, event: Finish) -> None:
        self._roles.settle()
        self._judge_content()

    # -- roles -------------------------------------------------------------------------------
    def _settled(self, batch: LoaderBatch, role: Role) -> None:
        loader = batch.loader
        if role is Role.TRAIN:
            self._judge_content()  # an evaluation pass ended: training goes on
            if self._evaluating:
                self._new_training_phase(loader)
            self._training.add(loader)
            if self.session.step < FULL_STEPS and len(self._train_rows) < MAX_TRAIN_ROWS:
                self._hash_training(batch)
            return
        self._evaluating = True
        if loader in self._training or loader in self._judged or not self._training:
            return
        if loader in self._unrelated or not self._judge_indices(batch):
            self._unrelated.add(loader)
            self._collect_evaluation(batch)

    def _new_training_phase(self, loader: DataLoader) -> None:
        """Training resumes after an evaluation. On a loader the last phase did not use (the next
        fold of a cross-validation, with its own split), what is known of the training data is
        forgotten: the earlier folds' training samples are this fold's validation samples."""
        self._evaluating = False
        if loader not in self._training:
            self._training = weakref.WeakSet()
            self._train_rows = set()
            self._rows_hashed = self._rows_distinct = 0

    def _hash_training(self, batch: LoaderBatch) -> None:
        rows = row_fingerprints(batch.batch)
        if rows:
            self._train_rows.update(rows)
            self._rows_hashed += len(rows)
            self._rows_distinct += len(set(rows))

    # -- by index ----------------------------------------------------------------------------
    def _judge_indices(self, batch: LoaderBatch) -> bool:
        """Judge an evaluation loader by sample indices; False when the loaders do not expose them."""
        evaluated = loader_samples(batch.loader)
        if evaluated is None:
            return False
        trained: Samples = {}
        for loader in list(self._training):
            samples = loader_samples(loader)
            if samples is None:
                return False
            for holder, rows in samples.items():
                trained.setdefault(holder, set()).update(rows)
        if not set(evaluated) & set(trained):
            return False  # unrelated data: content decides
        self._judged.add(batch.loader)
        total = sum(len(rows) for rows in evaluated.values())
        shared = sum(len(rows & trained.get(holder, set())) for holder, rows in evaluated.items())
        trained_total = sum(len(rows) for rows in trained.values())
        if shared == 0 or shared / total < self._leak_share or (shared == total == trained_total):
            return True
        contained = shared == total
        self.report(
            (f"every one of the {total:,} samples this evaluation loader reads is also read by the training "
             f"loader ({trained_total:,} samples): if it is the validation set, the model is trained on it"
             if contained else
             f"{shared:,} of the {total:,} samples this evaluation loader reads ({shared / total:.0%}) are also "
             f"read by the training loader: the validation metrics are measured partly on training data"),
            batch.location,
            evidence={"shared_samples": shared, "evaluated_samples": total, "trained_samples": trained_total, "by": "index"},
            severity=Severity.INFO if contained else None,
        )
        return True

    # -- by content --------------------------------------------------------------------------
    def _collect_evaluation(self, batch: LoaderBatch) -> None:
        rows = row_fingerprints(batch.batch)
        if not rows:
            return
        loader = batch.loader
        collected = self._eval_rows.get(loader)
        if collected is None:
            collected = self._eval_rows[loader] = (set(), batch.location)
        if len(collected[0]) < MAX_EVAL_ROWS:
            collected[0].update(rows)

    def _judge_content(self) -> None:
        """Judge the evaluation passes collected so far (they ended: training resumed or the run did)."""
        if not self._eval_rows:
            return
        passes, self._eval_rows = dict(self._eval_rows), weakref.WeakKeyDictionary()
        for loader, (rows, location) in passes.items():
            self._judged.add(loader)
            if len(self._train_rows) < MIN_TRAIN_ROWS:
                if self.session.step < FULL_STEPS:
                    self._judged.discard(loader)  # evaluated early: judged at its next pass
                continue
            if self._rows_distinct < MIN_DISTINCT_SHARE * self._rows_hashed:
                continue
            shared = len(self._train_rows & rows)
            share = shared / len(self._train_rows)
            if shared < MIN_SHARED_ROWS or share < self._leak_share or share > 1 - self._leak_share:
                continue  # chance duplicates, or the training data itself evaluated again
            self.report(
                f"{shared:,} of the {len(self._train_rows):,} training samples fingerprinted on the first steps "
                f"({share:.0%}) also occur, bit for bit, in this evaluation loader's data: the validation metrics "
                f"are measured partly on training data (or the evaluation is meant to cover part of the training set)",
                location,
                evidence={"shared_rows": shared, "training_rows": len(self._train_rows), "evaluation_rows": len(rows), "by": "content"},
                severity=Severity.INFO,
            )
