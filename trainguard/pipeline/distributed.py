"""DDP for fit() when launched by torchrun: which rank this is, and the few things ranks agree on.

Under torchrun (WORLD_SIZE > 1) fit() joins the process group (gloo on CPU, nccl on CUDA) unless
the user already did, wraps the model in DistributedDataParallel, gives each rank its shard of
the (seed, epoch) order, and keeps ranks in lockstep: every rank sees the same mean loss (so all
fail fast together) and the same stop decision (so a SIGTERM to any rank stops all at the same
step boundary). Rank 0 writes every file; checkpoints hold every rank's RNG state.
"""

from __future__ import annotations

import io
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist

from trainguard.pipeline.settings import ConfigError


def training_device(name: str) -> torch.device:
    """`FitConfig.device` as a torch.device, checked. A bare "cuda" is this process's GPU: under
    torchrun, rank-local GPU LOCAL_RANK (so that ranks do not all share GPU 0)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name (e.g. 'cpu', 'cuda', 'cuda:1')") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: no CUDA GPU is visible to this process")
        if device.index is None:
            local_rank = os.environ.get("LOCAL_RANK")
            device = torch.device("cuda", int(local_rank) if local_rank is not None else torch.cuda.current_device())
    return device


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world: int = 1
    owns_group: bool = False  # fit() started the process group and must end it
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (nccl: the GPU)

    @classmethod
    def join(cls, device: torch.device) -> Ranks:
        """Join torchrun's process group when launched by it (or use the one already started)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), device=device)
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL binds each rank to its current GPU
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), owns_group=True, device=device)

    @property
    def main(self) -> bool:
        """Whether this rank writes the run's files."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to train: DDP around `model` across ranks, `model` itself alone."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def no_sync(self, module: torch.nn.Module, accumulating: bool) -> ContextManager[Any]:
        """Skip DDP's gradient all-reduce on the micro-batches before a window's last one."""
        return module.no_sync() if accumulating and self.world > 1 else nullcontext()  # type: ignore[operator]

    def agree(self, window_loss: torch.Tensor, stop_requested: bool) -> tuple[float, bool]:
        """The window's loss summed over micro-batches, averaged over ranks; stop if any rank must."""
        if self.world == 1:
            return window_loss.item(), stop_requested
        both = torch.stack([window_loss.float(), torch.tensor(float(stop_requested), device=window_loss.device)])
        dist.all_reduce(both)
        return both[0].item() / self.world, bool(both[1].item() > 0)

    def gather(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """`state` (tensors and plain values) from every rank, in rank order.

        Exchanged as `torch.save` bytes and read back with `weights_only=True`:
        `all_gather_object` would unpickle (and the guard would rightly report TG701).
        """
        if self.world == 1:
            return [state]
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8).to(self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([payload.numel()], device=self.device))
        longest = int(max(size.item() for size in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        padded[:payload.numel()] = payload
        received = [torch.empty(longest, dtype=torch.uint8, device=self.device) for _ in range(self.world)]
        dist.all_gather(received, padded)
        return [torch.load(io.BytesIO(bytes(data[:int(size.item())].cpu().tolist())), weights_only=True)
                for data, size in zip(received, sizes)]

    def leave(self) -> None:
        """End the process group if fit() started it."""
        if self.owns_group:
            dist.destroy_process_group()
