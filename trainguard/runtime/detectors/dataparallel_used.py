"""TG802 dataparallel-used: the model is trained through nn.DataParallel, judged at its first
training forward."""

from __future__ import annotations

from torch import nn

from trainguard.runtime.detectors.first_training_forward import FirstTrainingForward
from trainguard.runtime.events import ForwardCall


class DataParallelUsed(FirstTrainingForward):
    code = "TG802"

    def judge(self, event: ForwardCall, module: nn.Module) -> None:
        if isinstance(module, nn.DataParallel):
            self.report(
                "the model is trained through nn.DataParallel: one process scatters every batch and gathers "
                "every output, the first GPU is overloaded and PyTorch recommends DistributedDataParallel",
                event.location,
                evidence={"devices": len(module.device_ids or [])},
            )
