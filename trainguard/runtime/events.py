"""The few events the probes turn PyTorch's hooks into; detectors subscribe to them by name.

Every event is declared once, in `EVENTS` (its name -> its dataclass, whose docstring says when it
is emitted and what it carries). A detector (or session component) subscribes by defining a
method `on_<event name>` (e.g. `on_step_start`); `subscriptions` finds those methods and refuses
one whose name is not an event's, so that a misspelt subscription fails when the detectors load
instead of never being called. Events are facts about the run, never verdicts: deciding is the
detectors' work, and an emitted event is never changed: every handler sees what the probe saw.
The events of once-in-a-while moments are frozen dataclasses; those emitted every step or call
are plain (slotted) ones, because freezing one costs a few microseconds per construction
(`object.__setattr__` per field), about 2 % of a 1 ms training step over a step's events; a
test checks that no runtime module assigns to an event's field.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import MethodType
from typing import TYPE_CHECKING, Any, Iterator

from trainguard.runtime.callsite import Location

if TYPE_CHECKING:
    import torch
    from torch.optim import Optimizer

    from trainguard.runtime.state import OptimizerState, RootModule


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
    # Weak references to the integer tensors passed in (token ids, labels, masks), by position
    # (0, 1, ...) or keyword (`input_ids`, `labels`): what TG307 and TG310 compare with targets.
    integer_inputs: dict[int | str, weakref.ref]
    # Storage addresses of the output's dense tensors (ints, no tensor kept): what a later loss call
    # or another model's forward received can be matched to this call (views and detach() share them).
    output_storages: tuple[int, ...] = ()


@dataclass(slots=True)
class ModeSet:
    """`module.train(mode)` ran (also through `eval()`, which calls `train(False)`): the outermost
    call only, not its recursion into the submodules. Emitted after the call returned."""

    module: torch.nn.Module
    mode: bool
    location: Location


@dataclass(frozen=True, slots=True)
class ModuleBuilt:
    """A sub-module was registered on `module` (`self.layer = nn.Linear(...)` in a constructor)
    while the guard was installed: the guard has seen this module since it was built. Emitted
    only while a handler listens."""

    module: torch.nn.Module


@dataclass(frozen=True, slots=True)
class DropoutInEval:
    """A dropout op that drops units (`F.dropout` with p > 0 and training=True, attention with
    `dropout_p` > 0) ran inside a module in eval mode; seen in the first few eval-mode calls of
    each model in detailed windows. `module` is the class name of the innermost module."""

    module: str
    function: str
    p: float
    location: Location


@dataclass(frozen=True, slots=True)
class HiddenModuleCall:
    """A module with parameters called inside a root's forward but not registered in it (once per module)."""

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
    # cross_entropy / nll_loss: the target value left out of the loss (PyTorch's default -100)
    # and the per-class weights (None: none given); None for losses without them.
    ignore_index: int | None = None
    weight: torch.Tensor | None = None
    # Called inside a model's forward (a model that computes its own loss, such as a Hugging Face
    # model given `labels=`): that model's ForwardCall comes after this event, not before it.
    in_forward: bool = False


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
    """`optimizer.step()` is about to run; `index` is its 0-based step number.
    `gradients_zeroed`: every parameter's `.grad` is all zeros although backward passes filled
    it since the last step, and it was changed in place after the last of them (`p.grad.zero_()`
    by hand between backward and step; a `zero_grad` call there is a `gradients_cleared` event)."""

    optimizer: Optimizer
    state: OptimizerState
    index: int
    location: Location
    gradients_zeroed: bool = False


@dataclass(slots=True)
class StepEnd:
    """`optimizer.step()` returned; `location` is the same call site as its StepStart."""

    optimizer: Optimizer
    state: OptimizerState
    index: int
    location: Location


@dataclass(slots=True)
class GradientsCleared:
    """`optimizer.zero_grad()` or `module.zero_grad()` cleared the gradients of an optimizer's
    parameters (its sample parameter's `.grad` was replaced or changed by the call)."""

    optimizer: Optimizer
    state: OptimizerState
    # Backward passes accumulated into the sample since the optimizer's last step, before the call.
    backward_passes: int
    # Whether the call cleared every parameter of the optimizer; only checked (else None) when
    # backward passes had accumulated, which correct loops never clear before their step.
    whole_optimizer: bool | None
    location: Location


@dataclass(slots=True)
class ClipCall:
    """clip_grad_norm_ / clip_grad_value_, after it ran."""

    function: str
    total_norm: torch.Tensor | None
    # The limit passed in (max_norm / clip_value; None when it is not a number).
    limit: float | None
    # ids of the parameters passed in (the clip's own list of them: nothing kept alive).
    parameter_ids: frozenset[int]
    # True when the gradients were GradScaler-scaled: a backward went through an enabled
    # scaler's `scale()` and `unscale_()` was not called before the clip.
    grads_scaled: bool
    location: Location


@dataclass(slots=True)
class SchedulerStep:
    """`scheduler.step()` was called; `optimizer_stepped` says whether its optimizer has stepped yet."""

    scheduler: Any
    optimizer_stepped: bool
    location: Location


@dataclass(frozen=True, slots=True)
class TorchLoad:
    """`torch.load()` was called, with its `weights_only` argument (None: not given)."""

    weights_only: bool | None
    location: Location


@dataclass(frozen=True, slots=True)
class OptimizerStateLoad:
    """`optimizer.load_state_dict()` returned: the run resumes a training (an optimizer's moments
    and step counts restored, which fine-tuning from loaded weights alone does not do)."""

    location: Location


@dataclass(frozen=True, slots=True)
class StateDictLoad:
    """`module.load_state_dict(state_dict, strict=False)` returned: how many of its keys matched.

    `loaded` keys of the state dict matched the module's; `missing` of the module's keys and
    `unexpected` of the state dict's did not (a few of each, as examples, in `examples`).
    """

    module: str
    loaded: int
    missing: int
    unexpected: int
    examples: dict[str, list[str]]
    location: Location


@dataclass(slots=True)
class LoaderBatch:
    """A batch drawn from a DataLoader; `location` is where the loader was iterated.

    `batch` is what the loader returned (handlers must not keep it); `indices` are the dataset
    indices the loader's sampler chose for it, as the sampler gave them (read them with
    `fingerprints.plain_indices`); None where the loader does not expose them (workers that may
    return batches out of order).
    """

    loader: torch.utils.data.DataLoader
    location: Location
    batch: Any = None
    indices: Any = None


@dataclass(frozen=True, slots=True)
class LoaderIterated:
    """A new pass over a DataLoader began (`for batch in loader`, usually an epoch)."""

    loader: torch.utils.data.DataLoader
    location: Location
    # Batches drawn in this loader's previous pass (None for its first).
    previous_batches: int | None


@dataclass(slots=True)
class StepMeasured:
    """Numbers read at a detailed optimizer step (before it updates).

    `loss` is the mean training loss of the step's window; `layer_norms` maps parameter names to
    gradient norms (None in the loss-only ones `LossesRead.per_step` makes for steady-state steps).
    """

    step: int
    loss: float | None
    loss_location: Location | None
    grad_norm: float | None
    layer_norms: dict[str, float] | None
    layer_sizes: dict[str, int] | None
    lr: float | None
    location: Location


@dataclass(frozen=True, slots=True)
class LossesRead:
    """The training losses of the steady-state steps since the last read (see
    runtime.measurements), read together at a detailed step, before its own `measured` event, or
    at the end of the run: `losses[i]` is the mean loss of step `step_indices[i]`, in order. One event
    holding columns, not a `StepMeasured` per step: most `measured` handlers want gradient norms,
    which these steps do not have, and the ones that want losses take ~50 of them in one loop.
    `loss_location` and `location` are the last detailed step's loss and optimizer step (as in
    `StepMeasured`)."""

    step_indices: tuple[int, ...]
    losses: tuple[float, ...]
    loss_location: Location | None
    location: Location

    def per_step(self) -> Iterator[StepMeasured]:
        """A loss-only `StepMeasured` per step (no norms), for a consumer that needs them one by one."""
        for step, loss in zip(self.step_indices, self.losses):
            yield StepMeasured(step, loss, self.loss_location, None, None, None, None, self.location)


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Finish:
    """The session is being uninstalled (the run ended or `unwatch()` was called); carries nothing."""


# Every event, by the name handlers subscribe to (`on_<name>`), in the order of a training step.
# Those emitted at most once per step or call (not frozen: see the module docstring) are in PER_STEP.
EVENTS: dict[str, type] = {
    "forward": ForwardCall,
    "hidden_module": HiddenModuleCall,
    "mode_set": ModeSet,
    "module_built": ModuleBuilt,
    "dropout_in_eval": DropoutInEval,
    "loss": LossCall,
    "backward": BackwardCall,
    "step_start": StepStart,
    "step_end": StepEnd,
    "gradients_cleared": GradientsCleared,
    "clip": ClipCall,
    "scheduler_step": SchedulerStep,
    "torch_load": TorchLoad,
    "state_dict_load": StateDictLoad,
    "optimizer_state_load": OptimizerStateLoad,
    "loader_batch": LoaderBatch,
    "loader_iter": LoaderIterated,
    "measured": StepMeasured,
    "losses_read": LossesRead,
    "evaluated": Evaluated,
    "finish": Finish,
}

PER_STEP = frozenset({"forward", "mode_set", "loss", "backward", "step_start", "step_end", "gradients_cleared", "clip", "scheduler_step", "loader_batch", "measured"})

HANDLER_PREFIX = "on_"


class UnknownEventError(TypeError):
    """A handler method `on_<name>` whose name is no event's: a subscription that would never fire."""


def subscribed_events(cls: type) -> list[str]:
    """The events a detector or session component class handles (its `on_<name>` methods).

    Raises UnknownEventError, naming the class and the method, for an `on_<name>` method whose
    name is not in `EVENTS`.
    """
    names = []
    for attribute in dir(cls):
        if not attribute.startswith(HANDLER_PREFIX) or not callable(getattr(cls, attribute)):
            continue
        name = attribute[len(HANDLER_PREFIX):]
        if name not in EVENTS:
            raise UnknownEventError(
                f"{cls.__name__}.{attribute} subscribes to no event: {name!r} is not one of "
                f"{', '.join(EVENTS)} (trainguard.runtime.events.EVENTS)"
            )
        names.append(name)
    return names


def subscriptions(subscriber: object) -> dict[str, MethodType]:
    """The bound event handlers of `subscriber`, by event name (checked as `subscribed_events`)."""
    return {name: getattr(subscriber, HANDLER_PREFIX + name) for name in subscribed_events(type(subscriber))}
