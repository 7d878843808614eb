"""TG309 target-requires-grad: a loss target that carries a graph through trainable parameters (e.g. a TD target not detached)."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class TargetRequiresGrad(Detector):
    """TG309: TODO say at which event it decides, and from what."""

    code = "TG309"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG309 detector")
