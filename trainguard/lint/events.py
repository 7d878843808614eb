"""What the interpreter tells the rules: one dataclass per operation of a training program.

Rules define `on_<name>` methods for the events they need (`on_backward`, `on_optimizer_step`,
...), like the runtime guard's detectors; the interpreter calls them in program order.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from trainguard.lint.values import Tensor, Thing


@dataclass(frozen=True)
class Created:
    """A training object was made: optimizer, scheduler, scaler, loader, model, list, ..."""

    node: ast.AST
    thing: Thing


@dataclass(frozen=True)
class Call:
    """Any call whose target resolves through imports (`torch.load`, `torch.nn.DataParallel`, ...)."""

    node: ast.Call
    qualname: str


@dataclass(frozen=True)
class MethodCall:
    """A method called on known or name-guessed objects (`model.forward(x)`)."""

    node: ast.Call
    receivers: tuple[Thing, ...]
    method: str


@dataclass(frozen=True)
class Backward:
    """`loss.backward()` / `torch.autograd.backward(loss)`; `retain_graph` is None when not a literal."""

    node: ast.Call
    loss: frozenset
    retain_graph: bool | None


@dataclass(frozen=True)
class OptimizerStep:
    """`optimizer.step()` or `scaler.step(optimizer)`; `certain` is False for an unidentified `.step()`."""

    node: ast.Call
    optimizers: tuple[Thing, ...]
    certain: bool = True
    through_scaler: bool = False


@dataclass(frozen=True)
class ZeroGrad:
    """Gradients cleared: `targets` are the optimizers/models, or None for "some parameters" (`p.grad = None`)."""

    node: ast.AST
    targets: tuple[Thing, ...] | None


@dataclass(frozen=True)
class SchedulerStep:
    """`scheduler.step()`."""

    node: ast.Call
    schedulers: tuple[Thing, ...]


@dataclass(frozen=True)
class ScalerUnscale:
    """`scaler.unscale_(optimizer)`."""

    node: ast.Call
    scalers: tuple[Thing, ...]


@dataclass(frozen=True)
class ScalerUpdate:
    """`scaler.update()`."""

    node: ast.Call
    scalers: tuple[Thing, ...]


@dataclass(frozen=True)
class ClipGrad:
    """`torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`; `sources` are the clipped parameters'
    `(module thing, attribute path)` sources, None when not known."""

    node: ast.Call
    qualname: str
    sources: frozenset | None = None


@dataclass(frozen=True)
class Forward:
    """A model called. `root` is False inside a module's own methods (a submodule call).

    `mode` ("train"/"eval"), `grad` (grad mode enabled?) and `autocast` (dtype or None) are the
    possibilities at the call.
    """

    node: ast.Call
    model: Thing
    output: Tensor
    root: bool
    mode: frozenset
    grad: frozenset
    autocast: frozenset


@dataclass(frozen=True)
class LossCall:
    """A loss function applied: `family` is e.g. "cross_entropy"; `prediction` the values of its input."""

    node: ast.Call
    family: str
    prediction: frozenset


@dataclass(frozen=True)
class Keep:
    """A value stored in something that outlives the loop iteration (`losses.append(x)`, `total += x`);
    `container` holds the keeping list when known (empty for an accumulator)."""

    node: ast.AST
    value: frozenset
    keeper: str
    container: frozenset = frozenset()


@dataclass(frozen=True)
class Clear:
    """A keeper emptied or dropped: `del lst[:]`, `lst.clear()`, `del lst`, `lst = []`, `total = 0`;
    `container` is what it held before (its list, when known)."""

    node: ast.AST
    container: frozenset
    keeper: str


@dataclass(frozen=True)
class LoopStart:
    """A loop begins; `iterated` are the values of the `for` iterable (empty for `while`)."""

    node: ast.For | ast.AsyncFor | ast.While
    iterated: frozenset


@dataclass(frozen=True)
class Save:
    """`torch.save(obj, ...)`."""

    node: ast.Call
    obj: frozenset
