"""Optimizer probe: global optimizer step hooks, one gradient hook per optimizer, and a record of
every optimizer made (so that "is this parameter in any optimizer" can be answered).

Whether `.grad` was cleared between two steps is inferred without a zero_grad hook (PyTorch has
none): one sample parameter per optimizer carries a post-accumulate-grad hook from the moment the
optimizer is known (so the first step's backward passes are counted too), and each
accumulation is compared with the gradient seen last (the one the previous step left behind, then
the one the previous accumulation produced). The chain is unbroken when it is the same tensor and
its version advanced by exactly this accumulation; it breaks when the gradient was replaced
(set_to_none, `p.grad = None`) or changed in place in between (`zero_()`). The gradients were
cleared in a window if the chain broke anywhere in it: a GAN's generator step may add gradients to
the discriminator that its `zero_grad()` then clears before the discriminator's own backward.
The chain is followed where it is judged: in detailed steps and in the step before each window
(session.follows_gradients). Between them the hook returns at once and zero_grad passes through;
a step made detailed by a phase change starts from a gradient not seen last, so its chain counts
as broken (cleared) and the rules that need it stay silent there rather than guess.

`Optimizer.zero_grad` and `Module.zero_grad` are wrapped (no hook exists) to state which
optimizers' gradients a call cleared: the chain test alone cannot tell that a
`zero_grad(set_to_none=False)` placed between backward and step cleared the gradients the step
then used, so the next window would look stale (TG101) when it is the TG114 bug instead.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from itertools import compress
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.compiler import is_compiling
from torch.nn.parameter import is_lazy
from torch.optim import Optimizer
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils.hooks import RemovableHandle

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import GradientsCleared, OptimizerStateLoad, StepEnd, StepStart
from trainguard.runtime.probes import Patches
from trainguard.runtime.state import OptimizerState

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext


def optimizers_alive() -> Iterator[Optimizer]:
    """Every optimizer in the process, found among all the objects the collector tracks.

    The global step hooks fire through the wrapper that `Optimizer.__init__` puts on its class's
    `step` and marks `hooked` (torch-private, read only where it exists): a class whose `step`
    is not marked has no instance the guard could observe, so a process that has made no
    optimizer yet (every `trainguard run`) is not scanned at all. The scan itself filters in C by
    exact type: ~70 ms among 290,000 objects (about what `import torch` leaves), where
    `issubclass` per object took ~90 ms. `type()` never touches an object's attributes (a lazy
    module's would be computed)."""
    classes, pending = {Optimizer}, [Optimizer]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in classes:
                classes.add(subclass)
                pending.append(subclass)
    if hasattr(Optimizer, "_patch_step_function"):
        classes = {cls for cls in classes if getattr(cls.step, "hooked", False)}
        if not classes:
            return iter(())
    objects = gc.get_objects()
    return compress(objects, map(classes.__contains__, map(type, objects)))


class OptimizerProbe:
    def __init__(self, session: ObserverContext) -> None:
        self.session = session
        self.states: weakref.WeakKeyDictionary[Optimizer, OptimizerState] = session.optimizer_states
        self._handles: list[RemovableHandle] = []
        self._patches = Patches()
        # The optimizer looked up last and its state: a look-up in `states` makes a weak reference.
        self._last: tuple[weakref.ref[Optimizer], OptimizerState] | None = None
        # A steady-state step is counted, not observed; under `strict` its loss is read before the
        # update (a GuardStop raised there stops the run before NaN reaches the weights).
        measurements = session.measurements
        self._read_steady_losses = measurements.emit_steady if session.config.strict and measurements is not None else None
        # Whether a process group existed at the last observed step: then `step_end` is emitted
        # at every step, not only at observed ones (one made in the steady state counts from the next window).
        self._distributed = False

    def install(self) -> None:
        self._handles = [
            register_optimizer_step_pre_hook(self._pre),
            register_optimizer_step_post_hook(self._post),
        ]
        self._patches.replace(Optimizer, "__init__", self._wrap_init)
        self._patches.replace(Optimizer, "zero_grad", self._wrap_zero_grad, checks_compiling=True)
        self._patches.replace(torch.nn.Module, "zero_grad", self._wrap_zero_grad, checks_compiling=True)
        self._patches.replace(Optimizer, "load_state_dict", self._wrap_load_state_dict)
        # Last: should the scan fail, the hooks are in place and find each optimizer at its first step.
        for optimizer in optimizers_alive():  # made before watch() (none under `trainguard run`)
            self.state(optimizer)

    def uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._patches.undo()
        for state in list(self.states.values()):
            if state.sample_unhook is not None:
                state.sample_unhook()

    def state(self, optimizer: Optimizer) -> OptimizerState:
        last = self._last
        if last is not None and last[0]() is optimizer:  # the step hooks' usual case: the one that stepped last
            return last[1]
        state = self.states.get(optimizer)
        if state is not None:
            self._last = (weakref.ref(optimizer), state)
        else:
            state = self.states[optimizer] = OptimizerState()
            state.refresh_params(optimizer)
            self._choose_sample(optimizer, state, with_grad=False)
            self.session.phase_changed()  # a new optimizer: its first step is observed in full
        return state

    def _wrap_init(self, original: Any) -> Any:
        probe = self

        def __init__(optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            try:
                state = probe.state(optimizer)
                state.made_at = user_location()
            except Exception as error:
                probe.session.internal_error("optimizer probe", error)

        return __init__

    def _wrap_load_state_dict(self, original: Any) -> Any:
        probe = self

        def load_state_dict(optimizer: Optimizer, *args: Any, **kwargs: Any) -> Any:
            result = original(optimizer, *args, **kwargs)
            try:
                probe.session.phase_changed()  # a resume: its first step is observed in full
                probe.session.emit("optimizer_state_load", OptimizerStateLoad(user_location()))
            except Exception as error:
                probe.session.internal_error("optimizer probe", error)
            return result

        return load_state_dict

    def _wrap_zero_grad(self, original: Any) -> Any:
        probe, session = self, self.session

        def zero_grad(owner: Any, *args: Any, **kwargs: Any) -> Any:
            if not session.follows_gradients or is_compiling():
                return original(owner, *args, **kwargs)
            try:
                before = probe._sample_grads()
            except Exception as error:
                probe.session.internal_error("optimizer probe", error)
                return original(owner, *args, **kwargs)
            result = original(owner, *args, **kwargs)
            try:
                probe._cleared(owner, before)
            except Exception as error:
                probe.session.internal_error("optimizer probe", error)
            return result

        return zero_grad

    def _sample_grads(self) -> list[tuple[Optimizer, OptimizerState, torch.Tensor | None, int]]:
        """Each optimizer's sample gradient and its version, to see which ones a call changes."""
        found = []
        for optimizer, state in list(self.states.items()):
            sample = state.sample() if state.sample is not None else None
            grad = None if sample is None else sample.grad
            if grad is not None:
                found.append((optimizer, state, grad, grad._version))
        return found

    def _cleared(self, owner: Any, before: list[tuple[Optimizer, OptimizerState, torch.Tensor | None, int]]) -> None:
        location = None
        for optimizer, state, grad, version in before:
            sample = state.sample() if state.sample is not None else None
            after = None if sample is None else sample.grad
            if after is grad and (grad is None or grad._version == version):
                continue
            state.cleared_since_accumulation = True
            whole = None
            if state.accumulations:
                # Rare (the TG114 bug): worth a walk over the parameters.
                whole = owner is optimizer or (
                    isinstance(owner, torch.nn.Module) and state.param_ids <= {id(p) for p in owner.parameters()}
                )
            if not self.session.detailed:
                # The step before a window: the flags are kept (the window's chain and TG114 read them), no event.
                state.cleared_before_step = bool(whole)
                continue
            location = location or user_location()
            self.session.emit("gradients_cleared", GradientsCleared(optimizer, state, state.accumulations, whole, location))

    # -- step hooks ------------------------------------------------------------------------
    def _pre(self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if is_compiling():
            return None
        try:
            if not self.session.detailed:
                if self._read_steady_losses:
                    self._read_steady_losses()
                return None
            state = self.state(optimizer)
            state.refresh_params(optimizer)
            state.pending_start = state.step_location = user_location()
            deferred = self._start_after_closure(optimizer, state, args, kwargs)
        except Exception as error:
            self.session.internal_error("optimizer probe", error)
            return None
        if deferred is None:
            self._start(optimizer, state)
        return deferred

    def _start_after_closure(self, optimizer: Optimizer, state: OptimizerState, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """For `step(closure)`: the same arguments with the closure wrapped, so that the step is
        seen to start after the closure's zero_grad, forward and backward, as in a plain loop."""
        if callable(kwargs.get("closure")):
            closure, rewrap = kwargs["closure"], lambda wrapped: (args, {**kwargs, "closure": wrapped})
        elif len(args) > 1 and callable(args[1]):  # args[0] is the optimizer itself
            closure, rewrap = args[1], lambda wrapped: ((args[0], wrapped, *args[2:]), kwargs)
        else:
            return None
        probe = self

        def closure_then_step_start(*closure_args: Any, **closure_kwargs: Any) -> Any:
            result = closure(*closure_args, **closure_kwargs)
            probe._start(optimizer, state)  # after the first call only: LBFGS calls it again and again
            return result

        return rewrap(closure_then_step_start)

    def _start(self, optimizer: Optimizer, state: OptimizerState) -> None:
        location, state.pending_start = state.pending_start, None
        if location is None:
            return
        zeroed = False
        try:
            if state.sample is None or (state.steps == 0 and state.accumulations == 0):
                # No sample yet, or one that got no gradient (frozen or unused): one that has one.
                self._choose_sample(optimizer, state, with_grad=True)
            elif self._zeroed_in_place(optimizer, state):
                # Cleared since the last step after all (TG101 has nothing to say), and after the
                # last backward: the next step's chain starts afresh, as after a zero_grad there.
                zeroed = state.cleared = state.cleared_since_accumulation = True
        except Exception as error:
            self.session.internal_error("optimizer probe", error)
        # The step's number is still the one it had at its pre-hook: only the post-hook counts it.
        self.session.emit("step_start", StepStart(optimizer, state, state.steps, location, zeroed))

    @staticmethod
    def _zeroed_in_place(optimizer: Optimizer, state: OptimizerState) -> bool:
        """Gradients zeroed by hand between backward and step (`p.grad.zero_()` in a loop): the
        sample's gradient changed in place after its last accumulation (clipping and unscaling
        do that too, so this alone says nothing) and every parameter's gradient is all zeros.
        Device reads, on detailed steps only: one when the sample's gradient changed, more only
        when it is all zeros."""
        if not state.accumulations or state.cleared_since_accumulation or state.grad_seen is None:
            return False
        sample = state.sample() if state.sample is not None else None
        grad = None if sample is None else sample.grad
        if grad is None or grad._version == state.grad_version or state.grad_seen() is not grad:
            return False  # no gradient, a new tensor, or none of the in-place changes looked for
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        return not any(bool(g.any()) for g in grads)  # stops at the first gradient holding a non-zero

    def _post(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        if is_compiling():
            return
        try:
            state = self.state(optimizer)
            if state.pending_start is not None:
                self._start(optimizer, state)  # a closure the optimizer never called
            index = state.steps
            state.steps += 1
            state.attempts += 1
            state.accumulations = 0
            state.cleared = None
            if state.cleared_before_step:
                state.stepped_on_cleared, state.cleared_before_step = index, False
            observed = self.session.follows_gradients
            if observed:
                self._distributed = dist.is_available() and dist.is_initialized()
            if observed or self._distributed:
                # Observed steps (detailed ones, and the step before each window: a clip after it
                # is seen in the window); in a distributed run every step, for TG801's fixed steps.
                self.session.emit("step_end", StepEnd(optimizer, state, index, state.step_location))
            self.session.step_finished(index)
            if self.session.detailed:
                # The next step is observed: its first accumulation is compared with this gradient,
                # unless a zero_grad cleared it after its last backward (TG114): then the next
                # window starts from clean gradients.
                sample = state.sample() if state.sample is not None else None
                state.remember(None if sample is None or state.cleared_since_accumulation else sample.grad)
        except Exception as error:
            self.session.internal_error("optimizer probe", error)

    # -- the sample parameter --------------------------------------------------------------
    def _choose_sample(self, optimizer: Optimizer, state: OptimizerState, with_grad: bool) -> None:
        """The first trainable parameter (that holds a gradient, if `with_grad`) becomes the sample."""
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.requires_grad and not is_lazy(param) and (param.grad is not None or not with_grad):
                    if state.sample is not None and state.sample() is param:
                        return
                    if state.sample_unhook is not None:
                        state.sample_unhook()
                    state.sample = weakref.ref(param)
                    had_hooks = param._post_accumulate_grad_hooks is not None
                    handle = param.register_post_accumulate_grad_hook(self._accumulated_hook(state))
                    state.sample_unhook = weakref.finalize(optimizer, _unhook, handle, weakref.ref(param), had_hooks)
                    return

    def _accumulated_hook(self, state: OptimizerState) -> Any:
        session = self.session

        def accumulated(param: torch.Tensor) -> None:
            if not session.follows_gradients:
                return
            try:
                grad = param.grad
                unbroken = state.grad_seen is not None and state.grad_seen() is grad and grad is not None and grad._version == state.grad_version + 1
                state.cleared = bool(state.cleared) or not unbroken
                state.remember(grad)
                state.accumulations += 1
                state.cleared_since_accumulation = state.cleared_before_step = False
            except Exception as error:
                session.internal_error("optimizer probe", error)

        return accumulated


def _unhook(handle: RemovableHandle, param: weakref.ref, had_hooks: bool) -> None:
    handle.remove()
    tensor = param()
    if tensor is not None and not had_hooks and not tensor._post_accumulate_grad_hooks:
        tensor._post_accumulate_grad_hooks = None  # as the guard found it
