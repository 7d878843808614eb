"""TG101 stale-gradients: an optimizer step that used gradients never cleared since the last one."""

from __future__ import annotations

from trainguard.runtime.context import DetectorContext
from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class StaleGradients(Detector):
    code = "TG101"

    def __init__(self, session: DetectorContext) -> None:
        super().__init__(session)
        # Per optimizer state: backward passes summed into .grad since it was last cleared, and
        # how many earlier steps already used them.
        self._backward_passes: dict[int, int] = {}
        self._steps_carried: dict[int, int] = {}

    def on_step_start(self, event: StepStart) -> None:
        key = id(event.state)
        if event.state.cleared is not False:
            # Accumulations are counted on a sample parameter; when it got none (it was chosen
            # at this step), the backward calls since the last optimizer step stand in.
            self._backward_passes[key] = event.state.accumulations or len(self.session.window.backwards) or 1
            self._steps_carried[key] = 0
            return
        passes = self._backward_passes.get(key, 1) + event.state.accumulations
        carried = self._steps_carried.get(key, 0) + 1
        self._backward_passes[key], self._steps_carried[key] = passes, carried
        self.report(
            f"optimizer.step() used gradients accumulated over {passes} backward passes and "
            f"{carried} earlier step{'s' if carried > 1 else ''}: .grad was never cleared",
            event.location,
            evidence={"backward_passes": passes, "earlier_steps": carried},
            step=event.index,
        )
