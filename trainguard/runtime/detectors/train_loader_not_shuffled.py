"""TG501 train-loader-not-shuffled: training batches read in the same order every epoch."""

from __future__ import annotations

from typing import Sized, cast

from torch.utils.data import BatchSampler, IterableDataset, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import LoaderBatch, StepStart


class TrainLoaderNotShuffled(Detector):
    code = "TG501"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._last: LoaderBatch | None = None
        self._judged: set[int] = set()

    def on_loader_batch(self, event: LoaderBatch) -> None:
        self._last = event

    def on_step_start(self, event: StepStart) -> None:
        batch, self._last = self._last, None
        if batch is None or id(batch.loader) in self._judged:
            return
        self._judged.add(id(batch.loader))
        loader = batch.loader
        if isinstance(loader.dataset, IterableDataset):
            return
        sampler = loader.batch_sampler.sampler if isinstance(loader.batch_sampler, BatchSampler) else None
        fixed = isinstance(sampler, SequentialSampler) or (isinstance(sampler, DistributedSampler) and not sampler.shuffle)
        if fixed:
            samples = len(cast(Sized, loader.dataset))  # a sampler of a map-style dataset: it has a length
            self.report(
                f"the DataLoader that feeds training reads its {samples:,} samples in the same "
                f"order every epoch ({type(sampler).__name__}): batches are correlated and the model can "
                f"learn the order",
                batch.location,
                evidence={"sampler": type(sampler).__name__, "samples": samples},
                step=event.index,
            )
