"""Optimizer probe: global optimizer step hooks, one gradient hook per optimizer, and a record of
every optimizer made (so that "is this parameter in any optimizer" can be answered).

Whether `.grad` was cleared between two steps is inferred without a zero_grad hook (PyTorch has
none): one sample parameter per optimizer carries a post-accumulate-grad hook, and at its first
accumulation after a step the gradient is compared with the one the step left behind. Cleared
means replaced (set_to_none, `p.grad = None`) or modified in place before the accumulation
(`zero_()`); not cleared means the same tensor whose version advanced by exactly this one
accumulation.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.compiler import is_compiling
from torch.utils.hooks import RemovableHandle

from trainguard.runtime.callsite import user_location
from trainguard.runtime.events import GradAccumulated, StepEnd, StepStart
from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.session import GuardSession


@dataclass(eq=False)
class OptimizerState:
    """The guard's bookkeeping for one optimizer."""

    steps: int = 0
    # Step attempts, including those GradScaler skipped on inf/NaN gradients.
    attempts: int = 0
    accumulations: int = 0
    # Whether `.grad` was cleared before this window's first accumulation (None: not seen yet).
    cleared: bool | None = None
    sample: weakref.ref | None = None
    sample_handle: RemovableHandle | None = None
    grad_left: weakref.ref | None = None
    grad_version: int = -1
    param_ids: set[int] = field(default_factory=set)

    def refresh_params(self, optimizer: Optimizer) -> None:
        self.param_ids = {id(p) for group in optimizer.param_groups for p in group["params"]}


class OptimizerProbe:
    def __init__(self, session: GuardSession) -> None:
        self.session = session
        self.states: weakref.WeakKeyDictionary[Optimizer, OptimizerState] = session.optimizer_states
        self._handles: list[RemovableHandle] = []
        self._patches = Patches()

    def install(self) -> None:
        for obj in gc.get_objects():  # optimizers made before watch() (none under `trainguard run`)
            if issubclass(type(obj), Optimizer):  # type(): never touch a lazy module's attributes
                self.state(obj)
        self._handles = [
            register_optimizer_step_pre_hook(self._pre),
            register_optimizer_step_post_hook(self._post),
        ]
        self._patches.replace(Optimizer, "__init__", self._wrap_init)

    def uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._patches.undo()
        for state in list(self.states.values()):
            if state.sample_handle is not None:
                state.sample_handle.remove()

    def state(self, optimizer: Optimizer) -> OptimizerState:
        state = self.states.get(optimizer)
        if state is None:
            state = self.states[optimizer] = OptimizerState()
            state.refresh_params(optimizer)
        return state

    def _wrap_init(self, original: Any) -> Any:
        probe = self

        def __init__(optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            try:
                probe.state(optimizer)
            except Exception as error:
                probe.session.internal_error("optimizer probe", error)

        return __init__

    # -- step hooks ------------------------------------------------------------------------
    def _pre(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        if is_compiling():
            return
        try:
            state = self.state(optimizer)
            state.attempts += 1
            if self.session.detailed:
                state.refresh_params(optimizer)
            if state.sample is None:
                self._choose_sample(optimizer, state)
            event = StepStart(optimizer, state, state.steps, user_location())
        except Exception as error:
            self.session.internal_error("optimizer probe", error)
            return
        self.session.emit("step_start", event)

    def _post(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        if is_compiling():
            return
        try:
            state = self.state(optimizer)
            index = state.steps
            state.steps += 1
            sample = state.sample() if state.sample is not None else None
            grad = None if sample is None else sample.grad
            state.grad_left = None if grad is None else weakref.ref(grad)
            state.grad_version = -1 if grad is None else grad._version
            state.accumulations = 0
            state.cleared = None
            self.session.emit("step_end", StepEnd(optimizer, state, index))
            self.session.step_finished(index)
        except Exception as error:
            self.session.internal_error("optimizer probe", error)

    # -- the sample parameter --------------------------------------------------------------
    def _choose_sample(self, optimizer: Optimizer, state: OptimizerState) -> None:
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.requires_grad and param.grad is not None:
                    state.sample = weakref.ref(param)
                    state.sample_handle = param.register_post_accumulate_grad_hook(self._accumulated_hook(state))
                    return

    def _accumulated_hook(self, state: OptimizerState) -> Any:
        session = self.session

        def accumulated(param: torch.Tensor) -> None:
            try:
                if state.accumulations == 0:
                    grad = param.grad
                    stale = (
                        state.grad_left is not None
                        and state.grad_left() is grad
                        and grad._version == state.grad_version + 1
                    )
                    state.cleared = not stale
                    session.emit("grad_accumulated", GradAccumulated(state, not stale), may_stop=False)
                state.accumulations += 1
            except Exception as error:
                session.internal_error("optimizer probe", error)

        return accumulated
