"""Function probe: the calls PyTorch offers no hook for — loss functions, backward, gradient
clipping, GradScaler, learning-rate schedulers, `torch.load` and `load_state_dict(strict=False)`
(a module's own load hooks would live in the user's object) — wrapped and restored on exit.

Loss modules (nn.CrossEntropyLoss, ...) call the functional losses, so patching
`torch.nn.functional` covers both spellings.

Outside detailed steps (session.FULL_STEPS) a training loss or backward call only hands its
scalar to the measurements, which sum it on the device; clipping and scheduler steps pass
through. A loss computed without grad is an evaluation: a new phase, observed in full.
"""

from __future__ import annotations

import inspect
import sys
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
import torch.nn.utils
import torch.nn.utils.clip_grad
from torch import is_grad_enabled
from torch.amp.grad_scaler import GradScaler
from torch.compiler import is_compiling
from torch.optim import lr_scheduler

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import BackwardCall, ClipCall, LossCall, SchedulerStep, StateDictLoad, TorchLoad
from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext
    from trainguard.runtime.probes.modules import ModuleProbe

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
# The losses that take `ignore_index` (and per-class `weight`).
IGNORE_INDEX_LOSSES = frozenset({"cross_entropy", "nll_loss"})
_RECENT = 16  # loss outputs / scaled losses remembered for matching backward calls
_KEY_EXAMPLES = 3  # missing / unexpected keys shown in a StateDictLoad


class FunctionProbe:
    def __init__(self, session: ObserverContext, modules: ModuleProbe) -> None:
        self.session = session
        self._modules = modules
        self._patches = Patches()
        self._losses: deque[tuple[weakref.ref, str, str]] = deque(maxlen=_RECENT)
        self._scaled: deque[tuple[weakref.ref, weakref.ref]] = deque(maxlen=_RECENT)
        # GradScaler state between two `update()` calls.
        self.scaled_backward = False
        self.unscaled = False
        self._scheduler_seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        # Where a steady-state step's training loss goes (summed on its device), if anywhere.
        measurements = session.measurements
        self._steady = None if measurements is None else measurements.add_steady

    def install(self) -> None:
        patch = self._patches.replace
        for name in LOSS_FUNCTIONS:
            patch(F, name, self._wrap_loss(name), checks_compiling=True)
        patch(torch.autograd, "backward", self._wrap_backward, checks_compiling=True)
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
        patch(torch.nn.Module, "load_state_dict", self._wrap_load_state_dict)

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
            names = _names_after_target(original)
            steady = probe._steady

            def loss(input: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
                if is_compiling():
                    return original(input, target, *args, **kwargs)
                output = original(input, target, *args, **kwargs)
                if probe.session.detailed or not is_grad_enabled():
                    arguments = {**dict(zip(names, args)), **kwargs} if args else kwargs
                    probe._contained(lambda: probe._loss_called(name, input, target, output, arguments))
                elif steady is not None:  # the steady state: no closure made, as _contained would need
                    try:
                        steady(output, True)
                    except Exception as error:
                        probe.session.internal_error("function probe", error)
                return output

            return loss

        return make

    def _loss_called(self, name: str, input: Any, target: Any, output: Any, arguments: dict[str, Any]) -> None:
        """`arguments`: the call's arguments after (input, target), positional ones by name."""
        if not isinstance(input, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        if not torch.is_grad_enabled():
            self.session.phase_changed()  # an evaluation
        reduction = arguments.get("reduction", "mean")
        if output.grad_fn is not None:
            self._losses.append((weakref.ref(output), name, reduction))
        ignore_index, weight = None, None
        if name in IGNORE_INDEX_LOSSES:
            ignore_index = arguments.get("ignore_index", -100)
            weight = arguments.get("weight")
        call = LossCall(name, input, target, output, reduction, user_location(), ignore_index, weight, self._modules.in_root_call)
        self.session.emit("loss", call)

    # -- backward --------------------------------------------------------------------------
    def _wrap_backward(self, original: Any) -> Any:
        probe, steady = self, self._steady

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                return original(tensors, *args, **kwargs)
            try:
                if probe.session.detailed:
                    probe._backward_called(tensors, args, kwargs)
                elif steady is not None and isinstance(tensors, torch.Tensor):
                    steady(probe._unscaled(tensors)[0] if probe._scaled else tensors, False)
            except Exception as error:
                probe.session.internal_error("function probe", error)
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
            tensor, via_scaler = self._unscaled(tensor)
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

    def _unscaled(self, tensor: torch.Tensor) -> tuple[Any, bool]:
        """The loss that GradScaler.scale() made `tensor` from, and True; else `tensor`, False."""
        for scaled_ref, loss_ref in reversed(self._scaled):  # most recent first
            if scaled_ref() is tensor:
                self.scaled_backward = True
                return loss_ref(), True
        return tensor, False

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
                if not probe.session.detailed:
                    return original(*args, **kwargs)  # steady state: clipping passes through
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
            user_call = getattr(scheduler, "_step_count", 1) != 0 or isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)
            if user_call and probe.session.detailed:
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
                probe.session.phase_changed()  # a resume, usually: its first step is observed in full
                probe._contained(lambda: probe.session.emit("torch_load", TorchLoad(weights_only, user_location())))
            return original(*args, **kwargs)

        return load

    # -- load_state_dict -------------------------------------------------------------------
    def _wrap_load_state_dict(self, original: Any) -> Any:
        probe = self

        def load_state_dict(module: torch.nn.Module, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(module, state_dict, *args, **kwargs)
            strict = kwargs.get("strict", args[0] if args else True)
            # Only the user's non-strict loads: a strict one raises on any mismatch itself, and
            # torch's own calls (e.g. swa_utils) are not the user's. Frame 1 is the Patches wrapper.
            if strict is False and not sys._getframe(2).f_globals.get("__name__", "").startswith("torch."):
                probe._contained(lambda: probe._state_dict_loaded(module, state_dict, result))
            return result

        return load_state_dict

    def _state_dict_loaded(self, module: torch.nn.Module, state_dict: Any, result: Any) -> None:
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        loaded = len(state_dict) - len(unexpected)
        examples = {"missing": missing[:_KEY_EXAMPLES], "unexpected": unexpected[:_KEY_EXAMPLES]}
        event = StateDictLoad(type(module).__name__, loaded, len(missing), len(unexpected), examples, user_location())
        self.session.emit("state_dict_load", event)

def _names_after_target(function: Any) -> tuple[str, ...]:
    """The parameter names of a loss function after (input, target): positional arguments
    (`F.cross_entropy(x, y, w)`) are read by name. Empty when its signature cannot be read."""
    try:
        return tuple(inspect.signature(function).parameters)[2:]
    except (TypeError, ValueError):
        return ()
