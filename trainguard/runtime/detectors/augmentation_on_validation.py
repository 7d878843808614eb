"""TG505 augmentation-on-validation: random transforms applied to evaluation data.

An evaluation loader's batches carry their dataset indices (the data probe reads them from the
sampler). On its dataset's first evaluation pass the detector fingerprints each sample it meets
(at most `MAX_SAMPLES`); on later passes it fingerprints only the batches holding samples it
knows, and reports the first sample whose bits differ: the same index gave a different input, so
the dataset's transform is random. Once every kept sample was read again unchanged (or the
dataset was reported) the dataset is not hashed again.

Only `info` when every tensor of a changed sample changed (input and label alike): a dataset that
draws a fresh random sample per read (procedurally generated data) looks the same as one that
augments each part of a sample. Silent: deterministic transforms (in any order: a shuffled
evaluation loader), augmentations seeded per sample (the same "random" crop every time), and
datasets that a training loader reads too (a training-accuracy evaluation on augmented training
data is another matter). Batches whose rows do not match their indices one to one (a collate_fn
that packs or drops samples) are skipped, and so is a sample read at another shape than before
(padded to another batch's longest sample).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from torch.utils.data import DataLoader

from trainguard.findings import Severity
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import BackwardCall, Finish, ForwardCall, LoaderBatch, StepStart
from trainguard.runtime.fingerprints import plain_indices, row_fingerprints_by_tensor, row_shape
from trainguard.runtime.loader_roles import LoaderRoles, Role

MAX_SAMPLES = 4096


@dataclass
class _Seen:
    """What one evaluation dataset's samples looked like the first time they were read."""

    # index -> (the sample's shape, a fingerprint per tensor)
    first: dict[int, tuple[tuple, tuple[int, ...]]] = field(default_factory=dict)
    matched: int = 0  # samples read again unchanged
    reread: int = 0  # samples read again, comparable or not
    done: bool = False


class AugmentationOnValidation(Detector):
    code = "TG505"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._roles = LoaderRoles(self._settled)
        self._trained_datasets: weakref.WeakSet = weakref.WeakSet()
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dataset -> _Seen

    def on_loader_batch(self, event: LoaderBatch) -> None:
        self._roles.batch_drawn(event)

    def on_forward(self, event: ForwardCall) -> None:
        self._roles.forward(event)

    def on_backward(self, event: BackwardCall) -> None:
        self._roles.backward()

    def on_step_start(self, event: StepStart) -> None:
        self._roles.step_started()

    def on_finish(self, event: Finish) -> None:
        self._roles.settle()

    def _settled(self, batch: LoaderBatch, role: Role) -> None:
        dataset = _identity(batch.loader)
        if role is Role.TRAIN:
            self._trained_datasets.add(dataset)
            self._seen.pop(dataset, None)
            return
        if dataset in self._trained_datasets:
            return
        seen = self._seen.get(dataset)
        if seen is None:
            seen = self._seen[dataset] = _Seen()
        if seen.done:
            return
        indices = plain_indices(batch.indices)
        if indices is None:
            seen.done = True  # the loader does not say which samples it reads
            return
        known = [i for i in indices if i in seen.first]
        if not known and len(seen.first) >= MAX_SAMPLES:
            return
        rows = row_fingerprints_by_tensor(batch.batch)
        if rows is None or len(rows) != len(indices):
            return
        shape = row_shape(batch.batch)
        changed: list[tuple[int, int]] = []  # (index, how many of its tensors changed)
        for index, row in zip(indices, rows):
            first = seen.first.get(index)
            if first is None:
                if len(seen.first) < MAX_SAMPLES:
                    seen.first[index] = (shape, row)
                continue
            before_shape, before = first
            seen.reread += 1
            if before_shape != shape:
                continue  # padded to another batch's length: not comparable
            if before != row:
                changed.append((index, sum(a != b for a, b in zip(before, row))))
            else:
                seen.matched += 1
        if changed:
            seen.done = True
            index, parts = changed[0]
            tensors = len(rows[0])
            # A part that stayed in every changed sample (the label) says they are the same samples
            # transformed; when all parts of a sample changed, the dataset may as well draw a fresh
            # random sample per read (a label kept by chance is why the whole batch is looked at).
            every_part = any(count == tensors for _, count in changed)
            self.report(
                f"{len(changed)} evaluation sample(s) of {type(batch.loader.dataset).__name__} gave different inputs when read "
                f"again (sample {index}: {parts} of its {tensors} tensor(s) changed): the evaluation data goes "
                f"through a random transform, so validation metrics are noisy and measured on augmented data",
                batch.location,
                evidence={"dataset_index": index, "samples_changed": len(changed), "samples_unchanged": seen.matched, "tensors_changed": parts, "tensors": tensors},
                severity=Severity.INFO if every_part else None,
            )
            return
        if seen.reread >= min(MAX_SAMPLES, len(seen.first)):
            seen.done = True  # every sample kept from the first evaluation was read again, unchanged


def _identity(loader: DataLoader) -> object:
    """What identifies an evaluation dataset across evaluations: the dataset, or the loader for a
    dataset that takes no weak reference (a plain list: an id could be reused by another list)."""
    try:
        weakref.ref(loader.dataset)
    except TypeError:
        return loader
    return loader.dataset
