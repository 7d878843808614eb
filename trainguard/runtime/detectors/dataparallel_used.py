"""TG802 dataparallel-used and TG803 batchnorm-without-syncbn: how a model is spread over devices,
judged at its first training forward."""

from __future__ import annotations

import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import ForwardCall


class _FirstTrainingForward(Detector):
    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(session)
        self._seen: set[int] = set()

    def on_forward(self, event: ForwardCall) -> None:
        module = event.root.module
        if not event.training or module is None or id(module) in self._seen:
            return
        self._seen.add(id(module))
        self.judge(event, module)

    def judge(self, event: ForwardCall, module: nn.Module) -> None:
        """Look at a model at its first training forward."""


class DataParallelUsed(_FirstTrainingForward):
    code = "TG802"

    def judge(self, event: ForwardCall, module: nn.Module) -> None:
        if isinstance(module, nn.DataParallel):
            self.report(
                "the model is trained through nn.DataParallel: one process scatters every batch and gathers "
                "every output, the first GPU is overloaded and PyTorch recommends DistributedDataParallel",
                event.location,
                evidence={"devices": len(module.device_ids or [])},
            )


class BatchNormWithoutSyncBN(_FirstTrainingForward):
    code = "TG803"

    def judge(self, event: ForwardCall, module: nn.Module) -> None:
        if not isinstance(module, DistributedDataParallel) or not dist.is_initialized() or dist.get_world_size() < 2:
            return
        local = [name for name, m in module.named_modules() if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm) and m.training]
        if local:
            self.report(
                f"{len(local)} BatchNorm layer(s) run under DDP on {dist.get_world_size()} ranks without "
                f"SyncBatchNorm: each rank normalises with statistics of its own slice of the batch "
                f"({', '.join(local[:4])})",
                event.location,
                evidence={"batchnorm_layers": local[:20], "world_size": dist.get_world_size()},
            )
