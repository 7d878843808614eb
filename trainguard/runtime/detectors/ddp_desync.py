"""TG801 ddp-desync: parameters that differ across ranks.

DDP checks shapes only when it is built; afterwards a rank whose parameters drift (a nudge on one
rank, a non-deterministic kernel, a bad resume) stays drifted, since every rank applies the same
averaged update to different weights. At a few fixed steps (the same on every rank: a function of
the step index only) each rank publishes an exact checksum per parameter through the process
group's key-value store, and rank 0 compares them. The store is not a collective: a slow or dead
rank can only make rank 0 skip a check after a short timeout, never deadlock the training.
"""

from __future__ import annotations

import json
from datetime import timedelta

import torch
import torch.distributed as dist

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepEnd
from trainguard.runtime.measurements import parameter_names

_KEY = "trainguard/ddp-desync/{step}/{rank}"
_INTEGER_VIEW = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def checksums(params: list[torch.Tensor]) -> list[int]:
    """Per parameter, the sum of its bit patterns as integers: exact and independent of the order
    of summation, so equal parameters give equal checksums on every rank."""
    if not params:
        return []
    sums = [p.detach().contiguous().view(_INTEGER_VIEW[p.element_size()]).to(torch.int64).sum() for p in params]
    return [int(v) for v in torch.stack([s.cpu() for s in sums]).tolist()]


class DdpDesync(Detector):
    code = "TG801"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._every = session.config.thresholds.desync_every
        self._timeout = timedelta(seconds=session.config.thresholds.desync_timeout)

    def _due(self, step: int) -> bool:
        return step in (0, 9) or (step + 1) % self._every == 0

    def on_step_end(self, event: StepEnd) -> None:
        if not self._due(event.index) or not dist.is_available() or not dist.is_initialized():
            return
        world, rank = dist.get_world_size(), dist.get_rank()
        if world < 2:
            return
        params = [p for group in event.optimizer.param_groups for p in group["params"]]
        store = dist.distributed_c10d._get_default_store()
        store.set(_KEY.format(step=event.index, rank=rank), json.dumps(checksums(params)))
        if rank != 0:
            return
        keys = [_KEY.format(step=event.index, rank=r) for r in range(world)]
        try:
            store.wait(keys, self._timeout)
        except Exception:  # a rank is late or gone: skip this check rather than wait
            return
        values = [json.loads(store.get(key)) for key in keys]
        for key in keys:
            store.delete_key(key)
        differing = [r for r in range(1, world) if values[r] != values[0]]
        if not differing:
            return
        names = parameter_names(self.session)
        first = next(i for i in range(len(params)) if any(values[r][i] != values[0][i] for r in differing))
        name = names.get(id(params[first]), f"parameter {first}")
        self.report(
            f"parameters differ across ranks after step {event.index}: rank(s) {differing} hold different "
            f"values than rank 0 (first: {name}); DDP averages gradients but cannot bring drifted weights back",
            event.location,
            evidence={"differing_ranks": differing, "first_parameter": name, "checked_at_step": event.index},
            step=event.index,
        )
