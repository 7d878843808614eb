"""Function probe: the calls PyTorch offers no hook for — loss functions, backward, gradient
clipping, GradScaler, learning-rate schedulers and `torch.load` — wrapped and restored on exit.

Loss modules (nn.CrossEntropyLoss, ...) call the functional losses, so patching
`torch.nn.functional` covers both spellings.
"""

from __future__ import annotations

import sys
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
import torch.nn.utils
import torch.nn.utils.clip_grad
from torch.amp.grad_scaler import GradScaler
from torch.optim import lr_scheduler

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import BackwardCall, ClipCall, LossCall, SchedulerStep, TorchLoad
from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext

LOSS_FUNCTIONS = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
)
_RECENT = 16  # loss outputs / scaled losses remembered for matching backward calls


class FunctionProbe:
    def __init__(self, session: ObserverContext) -> None:
        self.session = session
        self._patches = Patches()
        self._losses: deque[tuple[weakref.ref, str, str]] = deque(maxlen=_RECENT)
        self._scaled: deque[tuple[weakref.ref, weakref.ref]] = deque(maxlen=_RECENT)
        # GradScaler state between two `update()` calls.
        self.scaled_backward = False
        self.unscaled = False
        self._scheduler_seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def install(self) -> None:
        patch = self._patches.replace
        for name in LOSS_FUNCTIONS:
            patch(F, name, self._wrap_loss(name))
        patch(torch.autograd, "backward", self._wrap_backward)
        for owner in (torch.nn.utils, torch.nn.utils.clip_grad):
            patch(owner, "clip_grad_norm_", self._wrap_clip("clip_grad_norm_"))
            patch(owner, "clip_grad_value_", self._wrap_clip("clip_grad_value_"))
        patch(GradScaler, "scale", self._wrap_scale)
        patch(GradScaler, "unscale_", self._wrap_unscale)
        patch(GradScaler, "step", self._wrap_scaler_step)
        patch(GradScaler, "update", self._wrap_update)
        patch(lr_scheduler.LRScheduler, "step", self._wrap_scheduler_step)
        patch(lr_scheduler.ReduceLROnPlateau, "step", self._wrap_scheduler_step)
        patch(torch, "load", self._wrap_load)

    def uninstall(self) -> None:
        self._patches.undo()

    def _contained(self, work: Callable[[], None]) -> None:
        """Run the guard's own bookkeeping; its faults never reach the user's call."""
        try:
            work()
        except Exception as error:
            self.session.internal_error("function probe", error)

    # -- losses ----------------------------------------------------------------------------
    def _wrap_loss(self, name: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            probe = self

            def loss(input: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
                output = original(input, target, *args, **kwargs)
                probe._contained(lambda: probe._loss_called(name, input, target, output, kwargs))
                return output

            return loss

        return make

    def _loss_called(self, name: str, input: Any, target: Any, output: Any, kwargs: dict[str, Any]) -> None:
        if not isinstance(input, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        reduction = kwargs.get("reduction", "mean")
        if output.grad_fn is not None:
            self._losses.append((weakref.ref(output), name, reduction))
        self.session.emit("loss", LossCall(name, input, target, output, reduction, user_location()))

    # -- backward --------------------------------------------------------------------------
    def _wrap_backward(self, original: Any) -> Any:
        probe = self

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            probe._contained(lambda: probe._backward_called(tensors, args, kwargs))
            return original(tensors, *args, **kwargs)

        return backward

    def _backward_called(self, tensors: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        # torch.autograd.backward(tensors, grad_tensors, retain_graph, create_graph, ...)
        retain = args[1] if len(args) > 1 else kwargs.get("retain_graph")
        create = args[2] if len(args) > 2 else kwargs.get("create_graph", False)
        tensor = tensors if isinstance(tensors, torch.Tensor) else None
        if tensor is None and isinstance(tensors, (list, tuple)) and len(tensors) == 1:
            tensor = tensors[0]
        via_scaler = False
        if tensor is not None:
            for scaled_ref, loss_ref in reversed(self._scaled):  # most recent first
                if scaled_ref() is tensor:
                    tensor, via_scaler = loss_ref(), True
                    self.scaled_backward = True
                    break
        raw_loss = None
        if tensor is not None:
            for loss_ref, name, reduction in reversed(self._losses):
                if loss_ref() is tensor:
                    raw_loss = (name, reduction)
                    break
        retain_graph = bool(create if retain is None else retain)
        value = tensor.detach() if tensor is not None and tensor.dim() == 0 and tensor.is_floating_point() else None
        call = BackwardCall(retain_graph, raw_loss, via_scaler, user_location(), value)
        self.session.window.backwards.append(call)
        self.session.emit("backward", call)

    # -- GradScaler ------------------------------------------------------------------------
    def _wrap_scale(self, original: Any) -> Any:
        probe = self

        def scale(scaler: GradScaler, outputs: Any) -> Any:
            scaled = original(scaler, outputs)
            if isinstance(outputs, torch.Tensor) and scaled is not outputs:
                probe._contained(lambda: probe._scaled.append((weakref.ref(scaled), weakref.ref(outputs))))
            return scaled

        return scale

    def _wrap_unscale(self, original: Any) -> Any:
        probe = self

        def unscale_(scaler: GradScaler, optimizer: Any) -> Any:
            probe.unscaled = True
            return original(scaler, optimizer)

        return unscale_

    def _wrap_scaler_step(self, original: Any) -> Any:
        probe = self

        def step(scaler: GradScaler, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            # A step GradScaler skips (inf/NaN gradients) still counts as the optimizer's turn.
            probe._contained(lambda: probe._attempted(optimizer))
            return original(scaler, optimizer, *args, **kwargs)

        return step

    def _attempted(self, optimizer: Any) -> None:
        states = self.session.optimizer_states
        if optimizer in states:
            states[optimizer].attempts += 1

    def _wrap_update(self, original: Any) -> Any:
        probe = self

        def update(scaler: GradScaler, *args: Any, **kwargs: Any) -> Any:
            probe.scaled_backward = probe.unscaled = False
            return original(scaler, *args, **kwargs)

        return update

    # -- clipping --------------------------------------------------------------------------
    def _wrap_clip(self, function: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            probe = self

            def clip(*args: Any, **kwargs: Any) -> Any:
                # The parameters as a list: a generator (`model.parameters()`) is read once, here,
                # and the clip gets the same tensors in the same order.
                parameters: Any = args[0] if args else kwargs.get("parameters")
                if parameters is not None and not isinstance(parameters, torch.Tensor):
                    parameters = list(parameters)
                    args, kwargs = ((parameters, *args[1:]), kwargs) if args else (args, {**kwargs, "parameters": parameters})
                result = original(*args, **kwargs)
                norm = result if isinstance(result, torch.Tensor) else None
                grads_scaled = probe.scaled_backward and not probe.unscaled
                limit = args[1] if len(args) > 1 else kwargs.get("max_norm", kwargs.get("clip_value"))
                probe._contained(lambda: probe._clipped(function, parameters, limit, norm, grads_scaled))
                return result

            return clip

        return make

    def _clipped(self, function: str, parameters: Any, limit: Any, norm: torch.Tensor | None, grads_scaled: bool) -> None:
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        ids = frozenset(id(p) for p in parameters or ())
        number = float(limit) if isinstance(limit, (int, float)) else None
        self.session.emit("clip", ClipCall(function, norm, number, ids, grads_scaled, user_location()))

    # -- schedulers ------------------------------------------------------------------------
    def _wrap_scheduler_step(self, original: Any) -> Any:
        probe = self

        def step(scheduler: Any, *args: Any, **kwargs: Any) -> Any:
            # The constructor's own initial step (`_step_count == 0`) is not the user's call.
            if getattr(scheduler, "_step_count", 1) != 0 or isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
                probe._contained(lambda: probe._scheduler_stepped(scheduler))
            return original(scheduler, *args, **kwargs)

        return step

    def _scheduler_stepped(self, scheduler: Any) -> None:
        state = self._optimizer_state(scheduler.optimizer)
        attempts = 0 if state is None else state.attempts
        stepped = attempts > self._scheduler_seen.get(scheduler, 0)
        self._scheduler_seen[scheduler] = attempts
        self.session.emit("scheduler_step", SchedulerStep(scheduler, stepped, user_location()))

    def _optimizer_state(self, optimizer: Any) -> Any:
        # Wrappers (accelerate's AcceleratedOptimizer, Lightning's) hold the real optimizer in
        # `.optimizer`; follow the chain to the one the guard counts steps of.
        for _ in range(4):
            state = self.session.optimizer_states.get(optimizer)
            if state is not None or not hasattr(optimizer, "optimizer"):
                return state
            optimizer = optimizer.optimizer
        return None

    # -- torch.load ------------------------------------------------------------------------
    def _wrap_load(self, original: Any) -> Any:
        probe = self

        def load(*args: Any, **kwargs: Any) -> Any:
            weights_only = kwargs.get("weights_only")
            # torch's own calls (dist.all_gather_object unpickles what the ranks sent) are not the user's.
            # Frame 1 is the Patches wrapper around this function; frame 2 called torch.load.
            if not sys._getframe(2).f_globals.get("__name__", "").startswith("torch."):
                probe._contained(lambda: probe.session.emit("torch_load", TorchLoad(weights_only, user_location())))
            return original(*args, **kwargs)

        return load
