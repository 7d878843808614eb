"""What the session's components see of it: narrow contexts instead of the session itself.

Probes, detectors and the components that derive or write events (measurements, the metrics
stream) are given the session typed as one of these protocols, never as `GuardSession`: they
depend on this module, the session module depends on them, and `session.py` alone builds them
all. `DetectorContext` is what a detector reads (the run's progress, the shared state, the
thresholds) and where it reports; `ObserverContext` adds what the probes and the derived-event
components need: emitting events, containing their own faults, and marking the end of a step.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from trainguard.findings import Finding, Severity
from trainguard.runtime.callsite import Location
from trainguard.runtime.config import GuardConfig
from trainguard.runtime.events import BackwardCall, ForwardCall
from trainguard.runtime.state import OptimizerState, RootModule

if TYPE_CHECKING:
    from torch.optim import Optimizer

# The guard observes in tiers (docs/runtime.md, "When each rule looks"). A detailed step is
# observed in full: events, detectors, global module hooks, measurements (the only steps where
# the guard reads device values). Detailed are the first FULL_STEPS optimizer steps, one step in
# every WINDOW_EVERY after them, and any step in which a phase begins (a model called in a new
# mode, an evaluation, a resume, a new optimizer or data loader). Every other step is the steady
# state: O(1) Python per call, no module hooks, no host reads; losses are summed on their device
# and read at the next detailed step.
FULL_STEPS = 20
WINDOW_EVERY = 50


@dataclass
class Window:
    """What happened since the last optimizer step (of any optimizer)."""

    batches: int = 0
    forwards: list[ForwardCall] = field(default_factory=list)
    backwards: list[BackwardCall] = field(default_factory=list)

    def reset(self) -> None:
        self.batches = 0
        self.forwards.clear()
        self.backwards.clear()


class DetectorContext(Protocol):
    """The session as a detector sees it: read the run, report findings."""

    @property
    def config(self) -> GuardConfig: ...

    @property
    def step(self) -> int:
        """Optimizer steps finished so far (of the optimizer that stepped most)."""

    @property
    def detailed(self) -> bool:
        """Whether this step is observed in full (see FULL_STEPS)."""

    @property
    def window(self) -> Window: ...

    @property
    def roots(self) -> dict[int, RootModule]:
        """The models seen, by id."""

    @property
    def optimizer_states(self) -> weakref.WeakKeyDictionary[Optimizer, OptimizerState]:
        """Every optimizer made, with the guard's bookkeeping for it."""

    @property
    def steps_taken(self) -> int:
        """Optimizer steps of all optimizers."""

    def report(
        self,
        code: str,
        rule: str,
        severity: Severity,
        message: str,
        location: Location,
        fix: str,
        evidence: dict[str, Any] | None = None,
        step: int | None = None,
    ) -> Finding | None: ...


class SteadyLosses(Protocol):
    """The measurements as the probes see them: where steady-state losses are kept on the device
    and read later (runtime.measurements)."""

    def add_steady(self, value: Any, from_loss_function: bool) -> None: ...

    def emit_steady(self) -> None: ...


class ObserverContext(DetectorContext, Protocol):
    """The session as a probe, the measurements or the metrics stream see it."""

    @property
    def measurements(self) -> SteadyLosses | None:
        """None when no detector or stream needs measurements."""

    @property
    def follows_gradients(self) -> bool:
        """Whether this step's zero_grad calls and gradient accumulations are followed: in detailed
        steps and in the step before each window (whose end the window's first step is compared with)."""

    @property
    def steady_begins(self) -> list[Callable[[], None]]:
        """Called when a steady-state step begins: probes take off what only detailed steps need."""

    def handles(self, name: str) -> bool:
        """Whether anything subscribes to the event `name` (a probe may then skip observing it)."""

    def phase_changed(self) -> None:
        """A phase begins: the rest of the current step is observed in full."""

    def emit(self, name: str, event: Any, may_stop: bool = True) -> None:
        """Hand `event` to the handlers of the event `name` (declared in events.EVENTS)."""

    def internal_error(self, where: str, error: BaseException) -> None:
        """A fault inside the guard: contained and reported once."""

    def step_finished(self, index: int) -> None:
        """An optimizer finished its step `index`."""
