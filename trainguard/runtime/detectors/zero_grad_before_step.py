"""TG114 zero-grad-before-step: gradients cleared between the last backward and `optimizer.step()`."""

from __future__ import annotations

from trainguard.runtime.callsite import Location
from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import BackwardCall, GradientsCleared, StepStart

# Steps in a row that must apply cleared gradients: a loop that skips a bad batch with
# `zero_grad(); step()` (non-finite gradients) does it once in a while, the misplaced call every step.
STEPS_IN_A_ROW = 2


class ZeroGradBeforeStep(Detector):
    """TG114, at the optimizer step: a zero_grad call that cleared every parameter of the optimizer
    after its gradients were accumulated, with no backward pass since; or, written by hand, no
    parameter of the optimizer holding a gradient although backward passes reached it, or every
    gradient zeroed in place after them."""

    code = "TG114"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        # Per optimizer state: the clearing call waiting for that optimizer's step.
        self._pending: dict[int, GradientsCleared] = {}
        # Per optimizer state: consecutive steps that applied cleared gradients.
        self._in_a_row: dict[int, int] = {}
        self._last_index: dict[int, int] = {}  # the last observed step that found its gradients cleared

    def on_gradients_cleared(self, event: GradientsCleared) -> None:
        if event.backward_passes and event.whole_optimizer:
            key = id(event.state)
            self._pending[key] = event

    def on_backward(self, event: BackwardCall) -> None:
        # A backward pass after the clearing call: the step may use its gradients.
        self._pending.clear()

    def on_step_start(self, event: StepStart) -> None:
        key = id(event.state)
        cleared = self._pending.pop(key, None)
        location: Location | None = cleared.location if cleared is not None else None
        how = "zero_grad() cleared them"
        if cleared is None and event.gradients_zeroed:
            location, how = event.location, "every parameter's .grad was zeroed in place (p.grad.zero_())"
        elif cleared is None and event.state.accumulations and self._no_gradients(event):
            location, how = event.location, "every parameter's .grad was set to None"
        if location is None:
            self._in_a_row[key] = 0
            return
        # In a row means consecutive steps of this optimizer, not two detailed steps far apart; the
        # step before a window is followed, not observed, and its zero_grad call counts too.
        if self._last_index.get(key) == event.index - 1:
            previous = self._in_a_row.get(key, 0)
        else:
            previous = 1 if cleared is not None and event.state.stepped_on_cleared == event.index - 1 else 0
        self._last_index[key] = event.index
        self._in_a_row[key] = previous + 1
        if self._in_a_row[key] < STEPS_IN_A_ROW:
            return
        passes = cleared.backward_passes if cleared is not None else event.state.accumulations
        self.report(
            f"optimizer.step() ran after its gradients were cleared: {passes} backward "
            f"pass{'es' if passes > 1 else ''} filled .grad, then {how} before the step, "
            f"so the step applies no gradient",
            location,
            evidence={"backward_passes": passes, "steps_in_a_row": self._in_a_row[key]},
            step=event.index,
        )

    @staticmethod
    def _no_gradients(event: StepStart) -> bool:
        """No parameter of the optimizer holds a gradient (looked at only when the sample has none)."""
        sample = event.state.sample() if event.state.sample is not None else None
        if sample is None or sample.grad is not None:
            return False
        return all(p.grad is None for group in event.optimizer.param_groups for p in group["params"])
