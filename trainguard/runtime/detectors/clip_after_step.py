"""TG113 clip-after-step: gradients clipped after the optimizer step that already used them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import BackwardCall, ClipCall, StepEnd

if TYPE_CHECKING:
    from trainguard.runtime.state import OptimizerState


class ClipAfterStep(Detector):
    """TG113, at the clip: it clips parameters of an optimizer that has stepped since the last
    backward pass of the whole program. A clip in a closure, or between backward and step, follows
    a backward pass; a clip of one model between another optimizer's step and its own is not about
    the optimizer that stepped; a clip with an infinite limit only measures the norm."""

    code = "TG113"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._backwards = 0
        # Per optimizer state: the backward count when it last stepped, that step's index, the state.
        self._stepped: dict[int, tuple[int, int, OptimizerState]] = {}

    def on_backward(self, event: BackwardCall) -> None:
        self._backwards += 1

    def on_step_end(self, event: StepEnd) -> None:
        key = id(event.state)
        self._stepped[key] = (self._backwards, event.index, event.state)

    def on_clip(self, event: ClipCall) -> None:
        if event.limit is not None and math.isinf(event.limit):
            return
        for backwards, index, state in self._stepped.values():
            if backwards == self._backwards and event.parameter_ids & state.param_ids:
                self.report(
                    f"{event.function} ran after optimizer.step() #{index} and before the next backward(): "
                    f"the step already applied the unclipped gradients, so clipping changes nothing",
                    event.location,
                    evidence={"after_step": index},
                    step=index,
                )
                return
