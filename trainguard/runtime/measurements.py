"""Measurements: the numbers behind the numeric-health rules and the metrics stream.

At each optimizer step (before it updates) the mean training loss of the step's window is read,
and on sampled steps the gradient norms per parameter and the learning rate; the result is the
`measured` event. A step that called no loss function (a hand-written loss such as
`((out - y) ** 2).mean()`) takes the values backward() was called on as its training loss. Losses
computed without grad between two steps form one evaluation, whose mean is the `evaluated` event.

Device reads are the only cost that matters on a GPU (each one waits for the queued work), so
they happen on detailed steps only (session.FULL_STEPS): there the step's losses and the gradient
norms are read. Between detailed steps the probes hand the training losses to `add_steady`, which
keeps them on their device; the next detailed step (or the end of the run) reads them in one go
and emits them as one `losses_read` event (each step's loss, no gradient norms), late but in
order.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from trainguard.runtime.callsite import UNKNOWN, Location
from trainguard.runtime.events import BackwardCall, Evaluated, Finish, LossCall, LossesRead, StepMeasured, StepStart

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # (typing's own from Python 3.13)

    from trainguard.runtime.context import DetectorContext, ObserverContext

@dataclass
class _Sum:
    """A running sum of loss values: a Python float for CPU losses (a read is free there), a
    tensor on the loss's device otherwise (adding costs no synchronisation; read when sampled)."""

    total: float | torch.Tensor | None = None
    count: int = 0
    location: Location | None = None
    reduction: str | None = None

    def add(self, value: torch.Tensor, weight: int, location: Location, *, samples: int | None = None, reduction: str = "mean") -> None:
        """Add `value * weight`, counting `samples` (default: `weight`) towards the mean."""
        value = value.detach()
        term = value.item() * weight if value.device.type == "cpu" else value.float() * weight
        self.total = term if self.total is None else self.total + term
        self.count += weight if samples is None else samples
        self.location = location
        self.reduction = reduction if self.reduction in (None, reduction) else "mixed"

    def take(self) -> tuple[float | torch.Tensor | None, int, Location | None]:
        taken = (self.total, self.count, self.location)
        self.total, self.count, self.location, self.reduction = None, 0, None, None
        return taken


_IS_CPU = operator.attrgetter("is_cpu")


class _SteadyLosses:
    """Training losses of steady-state steps, kept on their device as detached scalars (a
    detach and an append: no device work, no read) until a detailed step reads them all at once."""

    LIMIT = 4096  # values kept between two reads at most (windows come every few steps)

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []
        self.steps: list[int] = []

    def add(self, value: torch.Tensor, step: int) -> None:
        if len(self.values) < self.LIMIT:
            self.values.append(value.detach())
            self.steps.append(step)

    def take(self) -> list[tuple[int, float]]:
        """Per step, in order, the mean of its losses (a CPU value is read as it is; device values
        in one read per device)."""
        values, steps = self.values, self.steps
        self.values, self.steps = [], []
        if not values:
            return []
        if all(map(_IS_CPU, values)):  # a read is a memory access: no stack needed
            numbers = list(map(torch.Tensor.item, values))
        else:
            numbers = _read_by_device(values)
        if len(set(steps)) == len(steps):  # one loss per step
            return list(zip(steps, numbers))
        per_step: dict[int, list[float]] = {}
        for step, number in zip(steps, numbers):
            per_step.setdefault(step, []).append(number)
        return [(step, sum(losses) / len(losses)) for step, losses in per_step.items()]


def _read_by_device(values: list[torch.Tensor]) -> list[float]:
    """The values of scalar tensors as Python floats, in one read per device: one in the usual
    case (float dtypes that differ are promoted by the stack, exactly; MPS has no float64)."""
    groups: dict[torch.device, list[int]] = {}
    for index, value in enumerate(values):
        groups.setdefault(value.device, []).append(index)
    numbers = [0.0] * len(values)
    for device, indices in groups.items():
        stacked = torch.stack([values[i] for i in indices])
        for i, number in zip(indices, (stacked.float() if device.type == "mps" else stacked.double()).tolist()):
            numbers[i] = number
    return numbers


class Measurements:
    """Session component that turns steps and loss calls into `measured` / `evaluated` events."""

    def __init__(self, session: ObserverContext) -> None:
        self.session = session
        self._train = _Sum()
        self._backward = _Sum()  # the values backward() was called on, for steps without a loss function
        self._eval = _Sum()
        self._steady = _SteadyLosses()
        self._steady_step_had_loss = -1  # the last steady step whose loss a loss function computed
        self._evaluations = 0
        self._names: dict[int, str] = {}
        # Where the last detailed step's loss and optimizer step were: the end-of-run read's places.
        self._places: tuple[Location | None, Location] = (None, UNKNOWN)

    def add_steady(self, value: Any, from_loss_function: bool) -> None:
        """A training loss of a steady-state step (a loss function's output, or the tensor
        backward() ran on), if it is one (a floating-point scalar with a graph): as on detailed
        steps, a step's loss-function values are its loss and backward() values count only in
        steps that called no loss function."""
        step = self.session.step
        if not from_loss_function and self._steady_step_had_loss == step:
            return
        # `not is_leaf`: a graph, as `grad_fn is not None` says, without making the node's Python object.
        if isinstance(value, torch.Tensor) and not value.is_leaf and value.dim() == 0 and value.is_floating_point():
            if from_loss_function:
                self._steady_step_had_loss = step
            self._steady.add(value, step)

    def on_loss(self, event: LossCall) -> None:
        if event.output.dim() != 0:
            return  # reduction="none": not a loss value
        if torch.is_grad_enabled() and event.output.grad_fn is not None:
            self._close_evaluation()
            self._train.add(event.output, 1, event.location)
        elif not torch.is_grad_enabled():
            samples = int(event.input.shape[0]) if event.input.dim() else 1
            if event.reduction == "sum":  # already a sum over the batch: per sample once divided by all samples
                self._eval.add(event.output, 1, event.location, samples=samples, reduction="sum")
            else:
                self._eval.add(event.output, samples, event.location)

    def on_backward(self, event: BackwardCall) -> None:
        if event.value is not None:
            self._backward.add(event.value, 1, event.location)

    def on_step_start(self, event: StepStart) -> None:
        # Emitted on detailed steps only: each is measured in full.
        self._close_evaluation()
        total, count, location = self._train.take()
        from_backward = self._backward.take()
        if total is None:
            total, count, location = from_backward
        loss = None if total is None else float(total) / count
        norms, sizes = self._gradient_norms(event.optimizer)
        grad_norm = math.sqrt(sum(n * n for n in norms.values())) if norms else None
        lr = event.optimizer.param_groups[0].get("lr")
        lr = float(lr) if isinstance(lr, (int, float, torch.Tensor)) else None
        self.emit_steady()
        self._places = (location or self._places[0], event.location)
        self.session.emit("measured", StepMeasured(event.index, loss, location, grad_norm, norms, sizes, lr, event.location))

    def emit_steady(self) -> None:
        """Read the steady-state steps' losses kept since the last read: one `losses_read` event
        (each step's loss, late but in order), before the current step's
        `measured`. Under `strict` the optimizer probe calls it before every step's update:
        stopping needs the value."""
        read = self._steady.take()
        if read:
            steps, losses = zip(*read)
            self.session.emit("losses_read", LossesRead(steps, losses, *self._places))

    def on_finish(self, event: Finish) -> None:
        self._close_evaluation()
        self.emit_steady()  # the steps after the last detailed one

    def _close_evaluation(self) -> None:
        reduction = self._eval.reduction or "mean"
        total, count, location = self._eval.take()
        if total is None or count == 0:
            return
        self._evaluations += 1
        value = float(total) / count
        where = location or Location(None, None)
        self.session.emit("evaluated", Evaluated(self._evaluations, self.session.step, value, count, where, reduction))

    def _gradient_norms(self, optimizer: torch.optim.Optimizer) -> tuple[dict[str, float], dict[str, int]]:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms: dict[str, float] = {}
        sizes: dict[str, int] = {}
        if not params:
            return norms, sizes
        names = self._names
        if any(id(p) not in names for p in params):
            names = self._names = parameter_names(self.session)
        for param, value in _gradient_norm_values(params):
            name = names.get(id(param), f"param{len(norms)}")
            norms[name] = value
            sizes[name] = param.numel()
        return norms, sizes


def _gradient_norm_values(params: list[torch.nn.Parameter]) -> list[tuple[torch.nn.Parameter, float]]:
    """The gradient norm of each parameter that holds a gradient (one whose values cannot be read
    is left out), in one read per device: dense real gradients in one go (the usual case), else
    grouped by device."""
    grads = [p.grad for p in params]
    if all(g.layout is torch.strided and g.is_floating_point() for g in grads):  # type: ignore[union-attr]
        try:
            with torch.no_grad():
                return list(zip(params, torch.stack(norms_of(grads)).tolist()))  # type: ignore[arg-type]
        except (RuntimeError, NotImplementedError):
            pass  # several devices, meta tensors: by device, below
    by_device: dict[torch.device, list[tuple[torch.nn.Parameter, torch.Tensor]]] = {}
    for param in params:
        values = stored_values(param.grad)  # type: ignore[arg-type]
        if values is not None:
            by_device.setdefault(values.device, []).append((param, values))
    found: list[tuple[torch.nn.Parameter, float]] = []
    for group in by_device.values():
        found += zip((param for param, _ in group), torch.stack(norms_of([grad for _, grad in group])).tolist())
    return found


def parameter_names(session: DetectorContext) -> dict[int, str]:
    """Parameter id -> name, from the models the guard has seen."""
    names: dict[int, str] = {}
    for root in list(session.roots.values()):
        for name, param in root.named_parameters():
            names.setdefault(id(param), name)
    return names


def stored_values(tensor: torch.Tensor) -> torch.Tensor | None:
    """A dense tensor of the values `tensor` holds (its norm and finiteness are the tensor's):
    the tensor itself, or a sparse tensor's values (a sparse embedding's gradient); None for
    tensors whose values cannot be read (meta, nested, quantized)."""
    if tensor.device.type == "meta" or tensor.is_nested or tensor.is_quantized:
        return None
    if tensor.layout == torch.strided:
        return tensor.detach()
    if tensor.layout == torch.sparse_coo:
        return tensor.detach().coalesce().values()  # duplicate indices are summed first
    if tensor.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        return tensor.detach().values()
    return None


def norm_of(values: torch.Tensor) -> torch.Tensor:
    """The 2-norm of a dense tensor, computed in at least float32 precision."""
    # A complex tensor's norm is real; `.float()` would drop its imaginary part (with a warning).
    return torch.linalg.vector_norm(values if values.is_complex() else values.float())


def norms_of(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norms of dense tensors on one device, as `norm_of` computes them: in one foreach
    kernel for real floating-point tensors (as clip_grad_norm_ does), else one by one."""
    if all(t.is_floating_point() for t in tensors):
        try:
            return list(torch._foreach_norm(tensors, 2, dtype=torch.float32))
        except (RuntimeError, TypeError):  # an older PyTorch without the dtype argument
            pass
    return [norm_of(t) for t in tensors]


def all_finite(values: torch.Tensor) -> bool:
    """Whether a floating-point or complex tensor holds no NaN/Inf. A real one in one reduction and
    one read: `aminmax` carries a NaN to both ends and an infinity to one of them (`isfinite().all()`
    writes a mask as large as the tensor first: 7-10x slower on a CPU batch)."""
    if values.numel() == 0:
        return True
    if values.is_complex():  # aminmax takes no complex values
        return bool(torch.isfinite(values).all())
    low, high = torch.aminmax(values)
    return all(math.isfinite(end) for end in torch.stack((low, high)).tolist())


def first_nonfinite(named: list[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first tensor holding NaN or Inf (a device read per tensor: for failures only)."""
    for name, tensor in named:
        values = None if tensor is None else stored_values(tensor)
        if values is not None and (values.is_floating_point() or values.is_complex()) and not all_finite(values):
            return name
    return None


def finite(value: float | None) -> TypeIs[float]:
    return value is not None and math.isfinite(value)

