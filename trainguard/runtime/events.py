"""The few events the probes turn PyTorch's hooks into; detectors subscribe to them by name.

A detector subscribes by defining a method `on_<event name>` (e.g. `on_step_start`). Events are
facts about the run, never verdicts: deciding is the detectors' work.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainguard.runtime.callsite import Location

if TYPE_CHECKING:
    import torch
    from torch.optim import Optimizer

    from trainguard.runtime.probes.modules import RootModule
    from trainguard.runtime.probes.optimizers import OptimizerState


class ReachFlag:
    """Set when a backward pass reaches a forward output's graph (a grad_fn pre-hook fires).

    The graph's nodes hold the flag as their hook, so a weak reference to it is alive exactly as
    long as that graph is (which TG204 uses).
    """

    __slots__ = ("reached", "__weakref__")

    def __init__(self) -> None:
        self.reached = False

    def __call__(self, grad_outputs: Any) -> None:
        self.reached = True


@dataclass(slots=True)
class ForwardCall:
    """A call of a root module (a model, not one of its layers)."""

    root: RootModule
    training: bool
    grad_enabled: bool
    fp16_autocast: bool
    step: int
    location: Location
    # None when the output carries no graph (no_grad, inference_mode, frozen model). Events
    # hold no output tensors: the guard must not keep a user's graph alive.
    reach: ReachFlag | None
    # Weak references to the floating-point tensors passed in (the input batch).
    inputs: list[weakref.ref]


@dataclass(slots=True)
class HiddenModuleCall:
    """A module with trainable parameters called inside a root's forward but not registered in it."""

    root: RootModule
    module: torch.nn.Module
    location: Location


@dataclass(slots=True)
class LossCall:
    """A call of a loss function (functional or module), after it returned."""

    name: str
    input: torch.Tensor
    target: Any
    output: torch.Tensor
    reduction: str
    location: Location


@dataclass(slots=True)
class BackwardCall:
    """`tensor.backward()` / `torch.autograd.backward()`."""

    retain_graph: bool
    # When the tensor is the raw output of a loss function (seen through GradScaler.scale), that
    # loss's name and reduction; None when it was computed from a loss (e.g. loss / N).
    raw_loss: tuple[str, str] | None
    via_scaler: bool
    location: Location
    # The scalar backward() was called on (detached: no graph kept; unscaled when it went through
    # GradScaler.scale), None for a non-scalar; the training loss of a step that called no loss function.
    value: torch.Tensor | None = None


@dataclass(slots=True)
class StepStart:
    """`optimizer.step()` is about to run; `index` is its 0-based step number."""

    optimizer: Optimizer
    state: OptimizerState
    index: int
    location: Location


@dataclass(slots=True)
class StepEnd:
    """`optimizer.step()` returned; `location` is the same call site as its StepStart."""

    optimizer: Optimizer
    state: OptimizerState
    index: int
    location: Location


@dataclass(slots=True)
class ClipCall:
    """clip_grad_norm_ / clip_grad_value_, after it ran."""

    function: str
    total_norm: torch.Tensor | None
    # True when the gradients were GradScaler-scaled: a backward went through an enabled
    # scaler's `scale()` and `unscale_()` was not called before the clip.
    grads_scaled: bool
    location: Location


@dataclass(slots=True)
class SchedulerStep:
    scheduler: Any
    optimizer_stepped: bool
    location: Location


@dataclass(slots=True)
class TorchLoad:
    weights_only: bool | None
    location: Location


@dataclass(slots=True)
class LoaderBatch:
    """A batch drawn from a DataLoader; `location` is where the loader was iterated."""

    loader: torch.utils.data.DataLoader
    location: Location


@dataclass(slots=True)
class LoaderIterated:
    """A new pass over a DataLoader began (`for batch in loader`, usually an epoch)."""

    loader: torch.utils.data.DataLoader
    location: Location
    # Batches drawn in this loader's previous pass (None for its first).
    previous_batches: int | None


@dataclass(slots=True)
class StepMeasured:
    """Numbers read at an optimizer step (before it updates), on the steps the sampler chose.

    `loss` is the mean training loss of the step's window; `layer_norms` maps parameter names to
    gradient norms (None on steps where gradients were not measured); `update_ratio` is filled
    in by the metrics writer after the step.
    """

    step: int
    loss: float | None
    loss_location: Location | None
    grad_norm: float | None
    layer_norms: dict[str, float] | None
    layer_sizes: dict[str, int] | None
    lr: float | None
    location: Location
    update_ratio: float | None = None


@dataclass(slots=True)
class Evaluated:
    """One evaluation: the per-sample loss of the loss calls made without grad between two steps
    (mean-reduced calls weighted by their batch size; sum-reduced ones summed, then divided by the
    samples: what `total / len(dataset)` prints). `reduction` is the calls' ("mixed" if they differ)."""

    index: int
    step: int
    loss: float
    samples: int
    location: Location
    reduction: str = "mean"


EVENT_NAMES = (
    "forward",
    "hidden_module",
    "loss",
    "backward",
    "step_start",
    "step_end",
    "clip",
    "scheduler_step",
    "torch_load",
    "loader_batch",
    "loader_iter",
    "measured",
    "evaluated",
    "finish",
)
