"""TG307 padding-in-loss: padding targets counted in the loss: targets hold the padding index and no `ignore_index` masks it."""

from __future__ import annotations

from trainguard.runtime.detectors import Detector
from trainguard.runtime.events import StepStart


class PaddingInLoss(Detector):
    """TG307: TODO say at which event it decides, and from what."""

    code = "TG307"

    def on_step_start(self, event: StepStart) -> None:
        # Subscribe to the events the rule needs (trainguard.runtime.events.EVENTS) and call
        # self.report(message, location, evidence=...); the fix text comes from the catalogue.
        raise NotImplementedError("TG307 detector")
