"""TG502 sampler-epoch-not-set: a DistributedSampler's epoch never advanced between epochs, so it
yields the same order every epoch (pytorch/pytorch#31771)."""

from __future__ import annotations

import weakref

from torch.utils.data import BatchSampler
from torch.utils.data.distributed import DistributedSampler

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LoaderIterated


class SamplerEpochNotSet(Detector):
    code = "TG502"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._epochs: weakref.WeakKeyDictionary[DistributedSampler, int] = weakref.WeakKeyDictionary()

    def on_loader_iter(self, event: LoaderIterated) -> None:
        sampler = event.loader.sampler
        if isinstance(event.loader.batch_sampler, BatchSampler):
            sampler = event.loader.batch_sampler.sampler
        if not isinstance(sampler, DistributedSampler) or not sampler.shuffle:
            return
        previous_epoch = self._epochs.get(sampler)
        self._epochs[sampler] = sampler.epoch
        # Order = f(seed, epoch): a new full pass with the same epoch repeats the last order. A
        # pass cut short (e.g. `next(iter(loader))` to peek at a batch) is not an epoch.
        full_pass = event.previous_batches is not None and event.previous_batches >= len(event.loader)
        if full_pass and previous_epoch == sampler.epoch:
            self.report(
                f"a new pass over the DistributedSampler's loader started with the same epoch ({sampler.epoch}) "
                f"as the last one: every epoch reads the samples in the same order",
                event.location,
                evidence={"sampler_epoch": sampler.epoch, "batches_per_pass": len(event.loader)},
            )
