"""TG208 train-override-not-called: a model overrides `train()` (e.g. to freeze stages) but training starts without calling it."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class TrainOverrideNotCalled(Detector):
    """TG208: TODO say at which event it decides, and from what."""

    code = "TG208"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG208 detector")
