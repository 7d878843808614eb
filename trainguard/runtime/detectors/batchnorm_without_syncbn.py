"""TG803 batchnorm-without-syncbn: BatchNorm layers under DDP on several ranks without
SyncBatchNorm, judged at the model's first training forward."""

from __future__ import annotations

import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from trainguard.runtime.detectors.first_training_forward import FirstTrainingForward
from trainguard.runtime.events import ForwardCall


class BatchNormWithoutSyncBN(FirstTrainingForward):
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
