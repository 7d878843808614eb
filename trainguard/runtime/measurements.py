"""Measurements: the numbers behind the numeric-health rules and the metrics stream.

At each optimizer step (before it updates) the mean training loss of the step's window is read,
and on sampled steps the gradient norms per parameter and the learning rate; the result is the
`measured` event. Losses computed without grad between two steps form one evaluation, whose mean
is the `evaluated` event.

Device reads are the only cost that matters on a GPU (each one waits for the queued work), so the
losses are summed on their device and read once per step on the CPU, and only on sampled steps
on an accelerator; gradient norms are read on sampled steps only, every `every` steps, where
`every` adapts so that measuring costs at most ~0.5 % of the step time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainguard.runtime.callsite import Location
from trainguard.runtime.events import Evaluated, Finish, LossCall, StepMeasured, StepStart

if TYPE_CHECKING:
    from trainguard.runtime.session import GuardSession

MAX_EVERY = 100
COST_BUDGET = 0.005  # fraction of the step time that measuring may take


@dataclass
class _Sum:
    """A running sum of loss values: a Python float for CPU losses (a read is free there), a
    tensor on the loss's device otherwise (adding costs no synchronisation; read when sampled)."""

    total: float | torch.Tensor | None = None
    count: int = 0
    location: Location | None = None

    def add(self, value: torch.Tensor, weight: int, location: Location) -> None:
        value = value.detach()
        term = value.item() * weight if value.device.type == "cpu" else value.float() * weight
        self.total = term if self.total is None else self.total + term
        self.count += weight
        self.location = location

    def take(self) -> tuple[float | torch.Tensor | None, int, Location | None]:
        taken = (self.total, self.count, self.location)
        self.total, self.count, self.location = None, 0, None
        return taken


class Measurements:
    """Session component that turns steps and loss calls into `measured` / `evaluated` events."""

    def __init__(self, session: GuardSession) -> None:
        self.session = session
        self.every = 1
        self._train = _Sum()
        self._eval = _Sum()
        self._evaluations = 0
        self._last_step_time: float | None = None
        self._names: dict[int, str] = {}

    def on_loss(self, event: LossCall) -> None:
        if event.output.dim() != 0:
            return  # reduction="none": not a loss value
        if torch.is_grad_enabled() and event.output.grad_fn is not None:
            self._close_evaluation()
            self._train.add(event.output, 1, event.location)
        elif not torch.is_grad_enabled():
            self._eval.add(event.output, int(event.input.shape[0]) if event.input.dim() else 1, event.location)

    def on_step_start(self, event: StepStart) -> None:
        self._close_evaluation()
        now = time.perf_counter()
        step_time = None if self._last_step_time is None else now - self._last_step_time
        self._last_step_time = now
        total, count, location = self._train.take()
        sampled = event.index % self.every == 0 or self.session.detailed
        loss = None
        if total is not None and (sampled or not isinstance(total, torch.Tensor)):
            loss = float(total) / count
        norms = sizes = None
        grad_norm = None
        if sampled:
            started = time.perf_counter()
            norms, sizes = self._gradient_norms(event.optimizer)
            grad_norm = math.sqrt(sum(n * n for n in norms.values())) if norms else None
            cost = time.perf_counter() - started
            if step_time:
                self.every = max(1, min(MAX_EVERY, math.ceil(cost / (COST_BUDGET * step_time))))
        lr = event.optimizer.param_groups[0].get("lr")
        lr = float(lr) if isinstance(lr, (int, float, torch.Tensor)) else None
        if loss is None and norms is None:
            return
        self.session.emit("measured", StepMeasured(event.index, loss, location, grad_norm, norms, sizes, lr, event.location))

    def on_finish(self, event: Finish) -> None:
        self._close_evaluation()

    def _close_evaluation(self) -> None:
        total, count, location = self._eval.take()
        if total is None or count == 0:
            return
        self._evaluations += 1
        value = float(total) / count
        self.session.emit("evaluated", Evaluated(self._evaluations, self.session.step, value, count, location or Location(None, None)))

    def _gradient_norms(self, optimizer: torch.optim.Optimizer) -> tuple[dict[str, float], dict[str, int]]:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return {}, {}
        if any(id(p) not in self._names for p in params):
            self._names = parameter_names(self.session)
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for param in params:
            by_device.setdefault(param.grad.device, []).append(param)
        norms: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for group in by_device.values():
            values = torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in group]).tolist()
            for param, value in zip(group, values):
                name = self._names.get(id(param), f"param{len(norms)}")
                norms[name] = value
                sizes[name] = param.numel()
        return norms, sizes


def parameter_names(session: GuardSession) -> dict[int, str]:
    """Parameter id -> name, from the models the guard has seen."""
    names: dict[int, str] = {}
    for root in list(session.roots.values()):
        for name, param in root.named_parameters():
            names.setdefault(id(param), name)
    return names


def first_nonfinite(named: list[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first tensor holding NaN or Inf (a device read per tensor: for failures only)."""
    for name, tensor in named:
        if tensor is not None and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)

