"""TG111 retain-graph-in-loop: every backward of consecutive steps keeps its graph.

Judged only when two observed steps are consecutive (no steady-state step between them, see
docs/runtime.md): graphs retained on every tenth step only are not a loop's habit."""

from __future__ import annotations

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class RetainGraphInLoop(Detector):
    code = "TG111"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        self._previous_retained = False
        self._previous_taken = -1  # optimizer steps taken before the previous observed step

    def on_step_start(self, event: StepStart) -> None:
        backwards = self.session.window.backwards
        retained = bool(backwards) and all(call.retain_graph for call in backwards)
        consecutive = self._previous_taken == self.session.steps_taken - 1
        if retained and self._previous_retained and consecutive:
            self.report(
                "backward(retain_graph=True) ran for every backward of consecutive steps: each "
                "step's graph and saved activations stay in memory as long as anything refers to them",
                backwards[-1].location,
                evidence={"backward_calls": len(backwards)},
                step=event.index,
            )
        self._previous_retained, self._previous_taken = retained, self.session.steps_taken
