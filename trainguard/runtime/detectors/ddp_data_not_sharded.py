"""TG804 ddp-data-not-sharded: every DDP rank trains on the same samples.

Without a DistributedSampler (or another split by rank), every rank's DataLoader reads the whole
dataset in the same order (same seed): each rank computes the same gradient, DDP averages N
copies of it, and N processes do the work of one. At the first training forward of a
DistributedDataParallel model on each of the first `COMPARED_STEPS` steps, each rank publishes a
fingerprint of the loader batch it is about to train on (an order-free sum of its row
fingerprints, with its row count) through the process group's key-value store; after the step,
rank 0 collects them, waiting at most `desync_timeout` seconds: the store is not a collective, so a
slow or dead rank only makes it skip the check. Every rank holding the same samples on every
compared step is reported, at the last of them.

Silent: batches whose rows are not all distinct (low-entropy data can give equal batches of
different samples), batches that do not come from a DataLoader (synthetic data in a benchmark),
and DDP over a sub-group of the ranks (tensor or pipeline parallel groups that share data on purpose).
"""

from __future__ import annotations

import json
from datetime import timedelta

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall, LoaderBatch, StepEnd
from trainguard.runtime.fingerprints import row_fingerprints

COMPARED_STEPS = 2
_KEY = "trainguard/ddp-data-not-sharded/{step}/{rank}"
_MASK = (1 << 64) - 1


def batch_fingerprint(batch: object) -> list[int] | None:
    """[sum of the row fingerprints mod 2**64, row count] of a batch whose rows are all distinct;
    None for a batch without rows, or with repeated rows."""
    rows = row_fingerprints(batch)
    if not rows or len(set(rows)) != len(rows):
        return None
    return [sum(rows) & _MASK, len(rows)]


class DdpDataNotSharded(Detector):
    code = "TG804"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._timeout = timedelta(seconds=session.config.thresholds.desync_timeout)
        self._batch: LoaderBatch | None = None
        self._published: dict[int, Location] = {}  # step -> where this rank's batch was read
        self._identical: list[int] = []  # compared steps at which every rank held the same samples
        self._location: Location | None = None  # where rank 0 read the first of them
        self._done = False

    def on_loader_batch(self, event: LoaderBatch) -> None:
        self._batch = event if not self._done else None

    def on_forward(self, event: ForwardCall) -> None:
        batch, self._batch = self._batch, None
        step = self.session.step
        if self._done or batch is None or step in self._published or step in self._identical or not (event.training and event.grad_enabled):
            return
        if not isinstance(event.root.module, DistributedDataParallel) or not _whole_world(event.root.module):
            return
        self._published[step] = batch.location
        store = dist.distributed_c10d._get_default_store()
        store.set(_KEY.format(step=step, rank=dist.get_rank()), json.dumps(batch_fingerprint(batch.batch)))

    def on_step_end(self, event: StepEnd) -> None:
        # Popped: a second optimizer stepping at the same index (a GAN's) compares nothing again.
        location = None if self._done else self._published.pop(event.index, None)
        if location is None:
            return
        if event.index + 1 >= COMPARED_STEPS:
            self._done = True
        if dist.get_rank() != 0:
            return
        world = dist.get_world_size()
        store = dist.distributed_c10d._get_default_store()
        keys = [_KEY.format(step=event.index, rank=rank) for rank in range(world)]
        try:
            store.wait(keys, self._timeout)
        except Exception:  # a rank is late, gone, or trains this step on data from no loader
            self._done = True
            return
        fingerprints = [json.loads(store.get(key)) for key in keys]
        for key in keys:
            store.delete_key(key)
        if fingerprints[0] is None or any(f != fingerprints[0] for f in fingerprints[1:]):
            self._done = True
            return
        self._identical.append(event.index)
        self._location = self._location or location
        if len(self._identical) < COMPARED_STEPS:
            return
        self.report(
            f"all {world} ranks trained on the same {fingerprints[0][1]} samples at each of the first "
            f"{COMPARED_STEPS} steps: the training data is not sharded by rank, so every rank computes the "
            f"same gradient and the job does the work of one process",
            self._location,
            evidence={"world_size": world, "identical_steps": list(self._identical), "batch_size": fingerprints[0][1]},
            step=event.index,
        )


def _whole_world(model: DistributedDataParallel) -> bool:
    """Whether DDP averages over every rank of the job (not a sub-group that shares data on purpose)."""
    return dist.is_initialized() and dist.get_world_size() > 1 and dist.get_world_size(model.process_group) == dist.get_world_size()

