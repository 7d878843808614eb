"""The state the session shares between its probes and detectors: the models seen (roots) and
the guard's bookkeeping for every optimizer made.

The probes fill it (runtime.probes.modules, runtime.probes.optimizers); events and detectors read
it. It depends on nothing else of the runtime but call sites, so that everything may depend on it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.optim import Optimizer

from trainguard.runtime.callsite import UNKNOWN, Location


class RootModule:
    """What the guard knows about one model: its layers that behave differently in train/eval
    mode, its registered modules, and its parameters."""

    def __init__(self, module: nn.Module) -> None:
        self._module = weakref.ref(module)
        self.name = type(module).__name__
        # (training, grad enabled) of its last outermost call; None before the first.
        self.call_mode: tuple[bool, bool] | None = None
        self.refresh()

    @property
    def module(self) -> nn.Module | None:
        return self._module()

    def refresh(self) -> None:
        module = self._module()
        if module is None:
            return
        self.registered = {id(m) for m in module.modules()}
        self.mode_dependent = [
            (name, m)
            for name, m in module.named_modules()
            if (isinstance(m, _DropoutNd) and m.p > 0) or isinstance(m, _BatchNorm)
        ]
        self.param_ids = {id(p) for p in module.parameters()}

    def active_mode_dependent(self) -> list[str]:
        """Dropout/BatchNorm layers currently in train mode."""
        return [_describe(self.name, name, m) for name, m in self.mode_dependent if m.training]

    def batchnorms_training(self) -> list[str]:
        return [_describe(self.name, name, m) for name, m in self.mode_dependent if isinstance(m, _BatchNorm) and m.training]

    def mode_dependent_names(self) -> list[str]:
        return [_describe(self.name, name, m) for name, m in self.mode_dependent]

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        module = self._module()
        return [] if module is None else list(module.named_parameters())


def _describe(root_name: str, name: str, module: nn.Module) -> str:
    return f"{name or root_name} ({type(module).__name__})"


@dataclass(eq=False)
class OptimizerState:
    """The guard's bookkeeping for one optimizer."""

    steps: int = 0
    # Steps taken and those GradScaler skipped on inf/NaN gradients (its step() calls count too).
    attempts: int = 0
    accumulations: int = 0
    # Whether `.grad` was cleared since the last step (None: no accumulation seen yet).
    cleared: bool | None = None
    sample: weakref.ref | None = None
    # Removes the sample's hook: called when another sample is chosen, when the optimizer dies
    # and when the guard is removed (a parameter never keeps the guard's hook for longer).
    sample_unhook: weakref.finalize | None = None
    # The sample's gradient as last seen (at the last step's end or the last accumulation).
    grad_seen: weakref.ref | None = None
    grad_version: int = -1
    # A zero_grad call cleared the sample's gradient after its last accumulation.
    cleared_since_accumulation: bool = False
    # In the step before a window (followed, not observed): a zero_grad call cleared every
    # parameter after its backward passes; at its end, the index of that step (TG114 counts it
    # as the step before the window's, so a misplaced zero_grad that begins late is reported).
    cleared_before_step: bool = False
    stepped_on_cleared: int | None = None
    param_ids: set[int] = field(default_factory=set)
    step_location: Location = UNKNOWN
    # Where the user made the optimizer (UNKNOWN for one made before the guard was installed).
    made_at: Location = UNKNOWN
    # The call site of the step just begun, until its StepStart is emitted: at once, or after its
    # closure's first call for step(closure).
    pending_start: Location | None = None

    def remember(self, grad: torch.Tensor | None) -> None:
        self.grad_seen = None if grad is None else weakref.ref(grad)
        self.grad_version = -1 if grad is None else grad._version

    def refresh_params(self, optimizer: Optimizer) -> None:
        self.param_ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
